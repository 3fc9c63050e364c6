// Small JavaScript function-writing tasks. The prompt names the function and its parameters;
// the response is a short correct solution; meta.tests holds assert-style checks (run with a
// global `assert` = node:assert/strict) whose expected values come from a reference
// implementation in this file, so solution and tests are checked against each other in tests.

import type { Random } from '../util/rng.js';
import { assembleSplits, pick, randInt, type Draft, type TaskOptions, type TaskSplits } from './common.js';

export const CODE_CATEGORIES = ['strings', 'arrays', 'arithmetic', 'logic'] as const;
export type CodeCategory = (typeof CODE_CATEGORIES)[number];

interface Family {
  category: CodeCategory;
  /** Draws constants and returns the task. */
  make(r: Random): {
    names: string[];
    params: string[];
    what: string;
    body: string;
    ref: (...args: never[]) => unknown;
    input: (r: Random) => unknown[];
  };
}

const WORDS = [
  'apple',
  'banana',
  'level',
  'river',
  'stone',
  'kayak',
  'orange',
  'hello',
  'world',
  'noon',
  'tiger',
  'pepper',
  'moon',
  'civic',
  'garden',
  'window',
  'paper',
  'radar',
  'music',
  'yellow',
  'abba',
  'zebra',
  'lemon',
  'data',
];
const LETTERS = 'abeilmnoprstu'.split('');

const word = (r: Random) => pick(r, WORDS);
const nums = (r: Random, lo = -5, hi = 20) => Array.from({ length: randInt(r, 1, 6) }, () => randInt(r, lo, hi));
const int = (r: Random, lo = -20, hi = 50) => randInt(r, lo, hi);

const FAMILIES: Family[] = [
  // ---- strings
  {
    category: 'strings',
    make: () => ({
      names: ['reverseString', 'reverse', 'reverseText'],
      params: ['s'],
      what: 'returns the string s reversed',
      body: "return s.split('').reverse().join('');",
      ref: (s: string) => s.split('').reverse().join(''),
      input: (r) => [word(r)],
    }),
  },
  {
    category: 'strings',
    make: (r) => {
      const c = pick(r, LETTERS);
      return {
        names: [`count${c.toUpperCase()}`, `countLetter${c.toUpperCase()}`],
        params: ['s'],
        what: `returns how many times the letter '${c}' appears in the string s`,
        body: `return s.split('${c}').length - 1;`,
        ref: (s: string) => s.split(c).length - 1,
        input: (r) => [word(r)],
      };
    },
  },
  {
    category: 'strings',
    make: (r) => {
      const k = randInt(r, 2, 5);
      return {
        names: [`repeat${k}`, `repeat${k}Times`],
        params: ['s'],
        what: `returns the string s repeated ${k} times`,
        body: `return s.repeat(${k});`,
        ref: (s: string) => s.repeat(k),
        input: (r) => [word(r).slice(0, 3)],
      };
    },
  },
  {
    category: 'strings',
    make: (r) => {
      const c = pick(r, LETTERS);
      return {
        names: [`startsWith${c.toUpperCase()}`, `beginsWith${c.toUpperCase()}`],
        params: ['s'],
        what: `returns true if the string s starts with the letter '${c}', and false otherwise`,
        body: `return s.startsWith('${c}');`,
        ref: (s: string) => s.startsWith(c),
        input: (r) => [word(r)],
      };
    },
  },
  {
    category: 'strings',
    make: () => ({
      names: ['capitalize', 'capitalizeFirst', 'upperFirst'],
      params: ['s'],
      what: 'returns s with its first letter in upper case',
      body: 'return s.charAt(0).toUpperCase() + s.slice(1);',
      ref: (s: string) => s.charAt(0).toUpperCase() + s.slice(1),
      input: (r) => [word(r)],
    }),
  },
  {
    category: 'strings',
    make: () => ({
      names: ['isPalindrome', 'palindrome', 'readsSameBackwards'],
      params: ['s'],
      what: 'returns true if the string s reads the same forwards and backwards',
      body: "return s === s.split('').reverse().join('');",
      ref: (s: string) => s === s.split('').reverse().join(''),
      input: (r) => [word(r)],
    }),
  },
  {
    category: 'strings',
    make: () => ({
      names: ['countVowels', 'vowelCount', 'numVowels'],
      params: ['s'],
      what: 'returns the number of vowels (a, e, i, o, u) in the string s',
      body: "return s.split('').filter((c) => 'aeiou'.includes(c)).length;",
      ref: (s: string) => s.split('').filter((c) => 'aeiou'.includes(c)).length,
      input: (r) => [word(r)],
    }),
  },
  {
    category: 'strings',
    make: (r) => {
      const suf = pick(r, ['!', 'ing', 's', 'ed', '?', 'er']);
      return {
        names: [
          `add${pick(r, ['Suffix', 'Ending'])}`,
          `append${suf === '!' ? 'Bang' : suf === '?' ? 'Question' : suf.toUpperCase()}`,
        ],
        params: ['s'],
        what: `returns the string s followed by '${suf}'`,
        body: `return s + '${suf}';`,
        ref: (s: string) => s + suf,
        input: (r) => [word(r)],
      };
    },
  },
  // ---- arrays
  {
    category: 'arrays',
    make: () => ({
      names: ['sumArray', 'arraySum', 'sumAll', 'total'],
      params: ['arr'],
      what: 'returns the sum of the numbers in the array arr',
      body: 'return arr.reduce((a, b) => a + b, 0);',
      ref: (a: number[]) => a.reduce((x, y) => x + y, 0),
      input: (r) => [nums(r)],
    }),
  },
  {
    category: 'arrays',
    make: (r) => {
      const k = randInt(r, 2, 9);
      return {
        names: [`multiplyBy${k}`, `times${k}`, `scaleBy${k}`],
        params: ['arr'],
        what: `returns a new array with every number in arr multiplied by ${k}`,
        body: `return arr.map((x) => x * ${k});`,
        ref: (a: number[]) => a.map((x) => x * k),
        input: (r) => [nums(r)],
      };
    },
  },
  {
    category: 'arrays',
    make: (r) => {
      const k = randInt(r, 0, 10);
      return {
        names: [`greaterThan${k}`, `above${k}`, `filterAbove${k}`],
        params: ['arr'],
        what: `returns the numbers in arr that are greater than ${k}, in order`,
        body: `return arr.filter((x) => x > ${k});`,
        ref: (a: number[]) => a.filter((x) => x > k),
        input: (r) => [nums(r)],
      };
    },
  },
  {
    category: 'arrays',
    make: () => ({
      names: ['maxOf', 'largest', 'arrayMax'],
      params: ['arr'],
      what: 'returns the largest number in the non-empty array arr',
      body: 'return Math.max(...arr);',
      ref: (a: number[]) => Math.max(...a),
      input: (r) => [nums(r)],
    }),
  },
  {
    category: 'arrays',
    make: () => ({
      names: ['minOf', 'smallest', 'arrayMin'],
      params: ['arr'],
      what: 'returns the smallest number in the non-empty array arr',
      body: 'return Math.min(...arr);',
      ref: (a: number[]) => Math.min(...a),
      input: (r) => [nums(r)],
    }),
  },
  {
    category: 'arrays',
    make: () => ({
      names: ['countEven', 'evenCount', 'numEvens'],
      params: ['arr'],
      what: 'returns how many numbers in arr are even',
      body: 'return arr.filter((x) => x % 2 === 0).length;',
      ref: (a: number[]) => a.filter((x) => x % 2 === 0).length,
      input: (r) => [nums(r)],
    }),
  },
  {
    category: 'arrays',
    make: () => ({
      names: ['lastItem', 'lastElement', 'last'],
      params: ['arr'],
      what: 'returns the last element of the non-empty array arr',
      body: 'return arr[arr.length - 1];',
      ref: (a: number[]) => a[a.length - 1],
      input: (r) => [nums(r)],
    }),
  },
  {
    category: 'arrays',
    make: (r) => {
      const k = randInt(r, 1, 9);
      return {
        names: [`add${k}ToEach`, `plus${k}All`, `increaseBy${k}`],
        params: ['arr'],
        what: `returns a new array with ${k} added to every number in arr`,
        body: `return arr.map((x) => x + ${k});`,
        ref: (a: number[]) => a.map((x) => x + k),
        input: (r) => [nums(r)],
      };
    },
  },
  // ---- arithmetic
  {
    category: 'arithmetic',
    make: (r) => {
      const k = randInt(r, 2, 30);
      return {
        names: [`add${k}`, `plus${k}`],
        params: ['x'],
        what: `returns x plus ${k}`,
        body: `return x + ${k};`,
        ref: (x: number) => x + k,
        input: (r) => [int(r)],
      };
    },
  },
  {
    category: 'arithmetic',
    make: (r) => {
      const k = randInt(r, 2, 12);
      return {
        names: [`multiply${k}`, `times${k}`],
        params: ['x'],
        what: `returns x multiplied by ${k}`,
        body: `return x * ${k};`,
        ref: (x: number) => x * k,
        input: (r) => [int(r)],
      };
    },
  },
  {
    category: 'arithmetic',
    make: () => ({
      names: ['square', 'squared', 'sq'],
      params: ['x'],
      what: 'returns x times x',
      body: 'return x * x;',
      ref: (x: number) => x * x,
      input: (r) => [int(r)],
    }),
  },
  {
    category: 'arithmetic',
    make: () => ({
      names: ['rectangleArea', 'areaOfRectangle', 'area'],
      params: ['w', 'h'],
      what: 'returns the area of a rectangle of width w and height h',
      body: 'return w * h;',
      ref: (w: number, h: number) => w * h,
      input: (r) => [randInt(r, 1, 20), randInt(r, 1, 20)],
    }),
  },
  {
    category: 'arithmetic',
    make: (r) => {
      const k = randInt(r, 2, 9);
      return {
        names: [`mod${k}`, `remainder${k}`],
        params: ['x'],
        what: `returns the remainder of the non-negative integer x divided by ${k}`,
        body: `return x % ${k};`,
        ref: (x: number) => x % k,
        input: (r) => [randInt(r, 0, 100)],
      };
    },
  },
  {
    category: 'arithmetic',
    make: () => ({
      names: ['sumTo', 'sumUpTo', 'triangular'],
      params: ['n'],
      what: 'returns the sum of the integers from 1 to n',
      body: 'let s = 0;\n  for (let i = 1; i <= n; i++) s += i;\n  return s;',
      ref: (n: number) => (n * (n + 1)) / 2,
      input: (r) => [randInt(r, 1, 50)],
    }),
  },
  {
    category: 'arithmetic',
    make: () => ({
      names: ['minutesToSeconds', 'toSeconds'],
      params: ['m'],
      what: 'converts m minutes to seconds',
      body: 'return m * 60;',
      ref: (m: number) => m * 60,
      input: (r) => [randInt(r, 0, 120)],
    }),
  },
  // ---- logic
  {
    category: 'logic',
    make: () => ({
      names: ['isEven', 'even', 'checkEven'],
      params: ['n'],
      what: 'returns true if the integer n is even, and false otherwise',
      body: 'return n % 2 === 0;',
      ref: (n: number) => n % 2 === 0,
      input: (r) => [int(r)],
    }),
  },
  {
    category: 'logic',
    make: (r) => {
      const k = randInt(r, 2, 12);
      return {
        names: [`divisibleBy${k}`, `isMultipleOf${k}`],
        params: ['n'],
        what: `returns true if n is divisible by ${k}, and false otherwise`,
        body: `return n % ${k} === 0;`,
        ref: (n: number) => n % k === 0,
        input: (r) => [randInt(r, 0, 10) * (r() < 0.5 ? k : 1)],
      };
    },
  },
  {
    category: 'logic',
    make: () => ({
      names: ['maxOfTwo', 'larger', 'bigger'],
      params: ['a', 'b'],
      what: 'returns the larger of the numbers a and b',
      body: 'return a > b ? a : b;',
      ref: (a: number, b: number) => Math.max(a, b),
      input: (r) => [int(r), int(r)],
    }),
  },
  {
    category: 'logic',
    make: (r) => {
      const lo = randInt(r, 0, 10);
      const hi = lo + randInt(r, 5, 20);
      return {
        names: [`clamp${lo}To${hi}`, `limit${lo}To${hi}`],
        params: ['x'],
        what: `returns x limited to the range ${lo} to ${hi}`,
        body: `return Math.min(Math.max(x, ${lo}), ${hi});`,
        ref: (x: number) => Math.min(Math.max(x, lo), hi),
        input: (r) => [int(r, -10, 40)],
      };
    },
  },
  {
    category: 'logic',
    make: () => ({
      names: ['sign', 'signOf'],
      params: ['x'],
      what: 'returns 1 if x is positive, -1 if x is negative, and 0 if x is zero',
      body: 'if (x > 0) return 1;\n  if (x < 0) return -1;\n  return 0;',
      ref: (x: number) => (x > 0 ? 1 : x < 0 ? -1 : 0),
      input: (r) => [randInt(r, -3, 3)],
    }),
  },
  {
    category: 'logic',
    make: (r) => {
      const k = randInt(r, 3, 7);
      const w = pick(r, ['fizz', 'buzz', 'bang', 'pop']);
      return {
        names: [`${w}${k}`, `say${w[0]!.toUpperCase()}${w.slice(1)}${k}`],
        params: ['n'],
        what: `returns '${w}' if n is divisible by ${k}, and otherwise n as a string`,
        body: `return n % ${k} === 0 ? '${w}' : String(n);`,
        ref: (n: number) => (n % k === 0 ? w : String(n)),
        input: (r) => [randInt(r, 1, 30)],
      };
    },
  },
];

const ASKS = [
  'Write a JavaScript function',
  'Implement a JavaScript function',
  'Write a function',
  'Create a JavaScript function',
];

/** A test line: deepStrictEqual for objects/arrays, strictEqual otherwise. */
function testLine(fn: string, args: unknown[], expected: unknown): string {
  const call = `${fn}(${args.map((a) => JSON.stringify(a)).join(', ')})`;
  const method = typeof expected === 'object' && expected !== null ? 'deepStrictEqual' : 'strictEqual';
  return `assert.${method}(${call}, ${JSON.stringify(expected)});`;
}

export function generateCodeProblem(rand: Random, category?: CodeCategory): Draft {
  const pool = category ? FAMILIES.filter((f) => f.category === category) : FAMILIES;
  const fam = pick(rand, pool);
  const t = fam.make(rand);
  const name = pick(rand, t.names);
  const signature = `${name}(${t.params.join(', ')})`;
  const instruction = `${pick(rand, ASKS)} \`${signature}\` that ${t.what}.`;
  const response = `function ${signature} {\n  ${t.body}\n}`;
  const tests: string[] = [];
  const seen = new Set<string>();
  for (let tries = 0; tests.length < 3 && tries < 30; tries++) {
    const args = t.input(rand);
    const line = testLine(name, args, (t.ref as (...a: unknown[]) => unknown)(...args));
    if (!seen.has(line)) {
      seen.add(line);
      tests.push(line);
    }
  }
  return { instruction, response, category: fam.category, meta: { entryPoint: name, tests } };
}

export function generateCodeTask(opts: TaskOptions = {}): TaskSplits {
  return assembleSplits('code', [...CODE_CATEGORIES], (r) => generateCodeProblem(r), {
    ...opts,
    defaultTrain: 2000,
    defaultTest: 200,
  });
}
