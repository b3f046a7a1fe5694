// @ts-check
const tseslint = require('typescript-eslint');

const nodeBuiltins = require('node:module').builtinModules.filter((m) => !m.startsWith('_'));

module.exports = tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'data/**', '.cache/**', 'coverage/**', '**/*.js', 'src/api/public/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: __dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // Workflow code runs in a deterministic sandbox: no Node built-ins, no I/O, no zod.
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins,
            ...nodeBuiltins.map((m) => `node:${m}`),
            'zod',
            'postgres',
            'drizzle-orm',
            'express',
          ].map((name) => ({ name, message: 'Workflow code must stay deterministic: no Node built-ins, I/O or zod.' })),
          patterns: [{ group: ['node:*'], message: 'No Node built-ins in workflow code.' }],
        },
      ],
    },
  },
);
