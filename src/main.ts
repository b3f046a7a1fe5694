import { runMain } from './runtime';

// `npm start`: everything in one process (dev server, database, worker, API).
void runMain({ worker: true, api: true, devServer: true });
