// Headless Chromium for the browser tests: Debian's package driven by playwright-core (nothing is
// downloaded by npm). One place says where it is, how it is started, and why a test must skip.
import * as fs from 'node:fs';

export const CHROMIUM = process.env.FEDBIOT_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** playwright's chromium launcher, or the reason a browser test has to skip (`what` names the check). */
export async function chromiumLauncher(what: string): Promise<typeof import('playwright-core').chromium | string> {
  if (!fs.existsSync(CHROMIUM))
    return `${CHROMIUM} not found: install Chromium (Debian: apt-get install -y chromium) to run ${what}`;
  try {
    return (await import('playwright-core')).chromium;
  } catch {
    return 'playwright-core is not installed (npm install)';
  }
}
