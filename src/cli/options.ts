// Option parsers shared by the sub-commands.

/** Commander collector for repeatable options (`--set a=1 --set b=2`). */
export function collectRepeated(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A numeric option's value, checked: undefined when absent, an error naming the flag when bad. */
export function numberOption(
  flag: string,
  v: string | undefined,
  check: (x: number) => boolean,
  what: string,
): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || !check(x)) throw new Error(`${flag} must be ${what}, got '${v}'`);
  return x;
}
