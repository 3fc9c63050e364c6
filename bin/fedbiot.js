#!/usr/bin/env node
// Launcher: runs the compiled CLI (npm ci / npm run build produce dist/).
import { main } from '../dist/cli/main.js';
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code ?? 0;
  },
  (err) => {
    console.error(`fedbiot: ${err?.message ?? err}`);
    process.exitCode = 1;
  },
);
