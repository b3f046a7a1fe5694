/** The API alone (scale-out: any number of these beside `npm run worker`). */
if (require.main === module) void import('../runtime').then(({ runMain }) => runMain({ worker: false, api: true }));
