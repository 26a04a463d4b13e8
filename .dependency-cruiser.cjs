// The layer check (npm run check:deps): lib/ modules import only from their own folder or from folders below
// theirs, never in a circle, never from test/ or a dev dependency. docs/ARCHITECTURE.md draws the same layers.
/** Bottom first: a folder may import the folders before it in this list. */
const LAYERS = [
  'util',
  'native',
  'tensor',
  'distributed',
  'ops',
  'data',
  'tokenizer',
  'verify',
  'task',
  'model',
  'algorithms',
  'rollout',
  'eval',
  'serve',
  'config',
  'train',
  'run',
  'report',
  'cli',
];

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `lib/${layer} sits below ${LAYERS.slice(i + 1).join(', ')}: it must not import them`,
  severity: 'error',
  from: { path: `^lib/${layer}/` },
  to: { path: `^lib/(${LAYERS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'import cycles make layers meaningless', severity: 'error', from: {}, to: { circular: true } },
    ...layerRules,
    {
      name: 'known-layer',
      comment: 'every lib/ folder is a layer listed in .dependency-cruiser.cjs (and docs/ARCHITECTURE.md)',
      severity: 'error',
      from: { path: '^lib/', pathNot: [`^lib/(${LAYERS.join('|')})/`, '^lib/index\\.ts$'] },
      to: {},
    },
    {
      name: 'no-root-api-inside',
      comment: 'lib/index.ts is the package root: nothing inside lib imports it',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^lib/index\\.ts$' },
    },
    {
      name: 'lib-not-to-test',
      comment: 'library code never depends on tests',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(test|benchmarks|scripts)/' },
    },
    {
      name: 'lib-not-to-dev-deps',
      comment: 'installed users have no devDependencies',
      severity: 'error',
      from: { path: '^lib/' },
      to: { dependencyTypes: ['npm-dev'] },
    },
    { name: 'not-to-unresolvable', severity: 'error', from: {}, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js', '.mjs'],
    },
  },
};
