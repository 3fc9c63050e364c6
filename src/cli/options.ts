// Option parsers shared by the sub-commands.

/** Commander collector for repeatable options (`--set a=1 --set b=2`). */
export function collectRepeated(value: string, previous: string[]): string[] {
  return [...previous, value];
}
