// Development launcher: runs the CLI from the TypeScript sources (node --import tsx src/cli/run-dev.ts ...).
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code ?? 0;
  },
  (err: unknown) => {
    console.error(`fedbiot: ${(err as Error)?.message ?? err}`);
    process.exitCode = 1;
  },
);
