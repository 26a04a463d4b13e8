// ESLint (npm run lint): typescript-eslint's recommended rules over the TypeScript and JavaScript sources; formatting is
// prettier's (npm run format:check), so eslint-config-prettier turns the stylistic rules off.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'build/',
      'build-cmake/',
      'node_modules/',
      'prebuilds/',
      'demo-output/',
      'fixtures/',
      'benchmarks/out/',
      '.gpu/',
      'build-gpu/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: ['error', 'smart'],
      'no-console': 'off',
    },
  },
  prettier,
);
