// GSM8K-style word problems with 1-3 integer operations. Every answer is a worked solution
// with one line per operation ("Cost of the pens: 4 * 3 = 12") and a final "#### N"; the
// operations are kept in meta.steps so tests can recompute the answer.

import type { Random } from '../util/rng.js';
import { assembleSplits, pick, randInt, type Draft, type TaskOptions, type TaskSplits } from './common.js';

export type Op = '+' | '-' | '*' | '/';

export interface MathStep {
  a: number;
  op: Op;
  b: number;
  result: number;
}

export const MATH_CATEGORIES = ['shopping', 'time', 'distance', 'cooking', 'savings', 'school', 'garden'] as const;
export type MathCategory = (typeof MATH_CATEGORIES)[number];

const PEOPLE: readonly (readonly [string, 'he' | 'she'])[] = [
  ['Ava', 'she'],
  ['Liam', 'he'],
  ['Mia', 'she'],
  ['Noah', 'he'],
  ['Emma', 'she'],
  ['Omar', 'he'],
  ['Sofia', 'she'],
  ['Ethan', 'he'],
  ['Zoe', 'she'],
  ['Lucas', 'he'],
  ['Grace', 'she'],
  ['Ben', 'he'],
  ['Nora', 'she'],
  ['Leo', 'he'],
  ['Ruby', 'she'],
  ['Sam', 'he'],
  ['Lily', 'she'],
  ['Jack', 'he'],
  ['Hana', 'she'],
  ['Ravi', 'he'],
  ['Elena', 'she'],
  ['Diego', 'he'],
  ['Chloe', 'she'],
  ['Max', 'he'],
  ['Ivy', 'she'],
  ['Tom', 'he'],
  ['Maya', 'she'],
  ['Kai', 'he'],
  ['Rosa', 'she'],
  ['Owen', 'he'],
];

const SHOP_ITEMS = [
  'pens',
  'apples',
  'notebooks',
  'stickers',
  'candles',
  'mugs',
  'oranges',
  'books',
  'socks',
  'cookies',
  'pencils',
  'toy cars',
  'cupcakes',
  'plates',
  'markers',
];
const BAKED = ['cookies', 'muffins', 'rolls', 'cupcakes', 'biscuits', 'brownies'];
const PLANTS = ['tomato plants', 'roses', 'carrots', 'tulips', 'pepper plants', 'sunflowers', 'bean plants'];
const VEHICLES = ['car', 'bus', 'train', 'truck', 'van'];
const ACTIVITIES = ['reads', 'practices piano', 'jogs', 'paints', 'studies', 'plays chess', 'swims'];
const BILLS = [10, 20, 50, 100];

function apply(a: number, op: Op, b: number): number {
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return a / b;
  }
}

/** Builds the solution text and steps from labelled operations. */
class Solver {
  readonly steps: MathStep[] = [];
  private lines: string[] = [];
  calc(label: string, a: number, op: Op, b: number): number {
    const result = apply(a, op, b);
    this.steps.push({ a, op, b, result });
    this.lines.push(`${label}: ${a} ${op} ${b} = ${result}`);
    return result;
  }
  text(): string {
    const last = this.steps[this.steps.length - 1]!.result;
    return `${this.lines.join('\n')}\n#### ${last}`;
  }
}

type Scenario = (rand: Random, s: Solver) => string;

const cap = (w: string) => w[0]!.toUpperCase() + w.slice(1);

const SCENARIOS: Record<MathCategory, Scenario[]> = {
  shopping: [
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const item = pick(r, SHOP_ITEMS);
      const n = randInt(r, 2, 12);
      const p = randInt(r, 2, 9);
      s.calc(`Cost of the ${item}`, n, '*', p);
      return pick(r, [
        `${name} buys ${n} ${item} at $${p} each. How much does ${he} spend?`,
        `${item === 'socks' ? 'Socks cost' : `${cap(item)} cost`} $${p} each. How many dollars does ${name} pay for ${n} of them?`,
        `${name} needs ${n} ${item}. Each one costs $${p}. What is the total cost?`,
      ]);
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const item = pick(r, SHOP_ITEMS);
      const n = randInt(r, 2, 8);
      const p = randInt(r, 2, 9);
      const bill = BILLS.find((b) => b >= n * p)!;
      const cost = s.calc(`Cost of the ${item}`, n, '*', p);
      s.calc('Change', bill, '-', cost);
      return pick(r, [
        `${name} buys ${n} ${item} for $${p} each and pays with a $${bill} bill. How much change does ${he} get?`,
        `${name} pays for ${n} ${item} with a $${bill} bill. Each costs $${p}. How much change should ${he} receive?`,
      ]);
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const item1 = pick(r, SHOP_ITEMS);
      let item2 = pick(r, SHOP_ITEMS);
      while (item2 === item1) item2 = pick(r, SHOP_ITEMS);
      const n1 = randInt(r, 2, 9);
      const p1 = randInt(r, 2, 9);
      const n2 = randInt(r, 2, 9);
      const p2 = randInt(r, 2, 9);
      const c1 = s.calc(`Cost of the ${item1}`, n1, '*', p1);
      const c2 = s.calc(`Cost of the ${item2}`, n2, '*', p2);
      s.calc('Total cost', c1, '+', c2);
      return `${name} buys ${n1} ${item1} at $${p1} each and ${n2} ${item2} at $${p2} each. How much does ${he} spend in all?`;
    },
    (r, s) => {
      const [name] = pick(r, PEOPLE);
      const item = pick(r, SHOP_ITEMS);
      const p = randInt(r, 2, 9);
      const n = randInt(r, 2, 12);
      s.calc(`Number of ${item}`, n * p, '/', p);
      return pick(r, [
        `${name} spent $${n * p} on ${item} that cost $${p} each. How many ${item} did ${name} buy?`,
        `${cap(item)} cost $${p} each. How many can ${name} buy with $${n * p}?`,
      ]);
    },
  ],
  time: [
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const act = pick(r, ACTIVITIES);
      const m = randInt(r, 2, 9) * 5;
      const d = randInt(r, 2, 7);
      s.calc('Minutes in total', m, '*', d);
      return pick(r, [
        `${name} ${act} for ${m} minutes each day. How many minutes does ${he} spend in ${d} days?`,
        `Every day ${name} ${act} for ${m} minutes. How many minutes is that over ${d} days?`,
      ]);
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const h = randInt(r, 2, 9);
      const d = randInt(r, 2, 6);
      const w = randInt(r, 2, 4);
      const perWeek = s.calc('Hours per week', h, '*', d);
      s.calc(`Hours in ${w} weeks`, perWeek, '*', w);
      return `${name} works ${h} hours a day, ${d} days a week. How many hours does ${he} work in ${w} weeks?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const task = pick(r, ['homework', 'a puzzle', 'cleaning', 'a project']);
      const total = randInt(r, 30, 120);
      const done = randInt(r, 5, total - 5);
      s.calc('Minutes left', total, '-', done);
      return `${name} plans to spend ${total} minutes on ${task} and ${he} has already spent ${done} minutes. How many minutes are left?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const a = randInt(r, 10, 50);
      const b = randInt(r, 10, 50);
      const k = randInt(r, 2, 5);
      const day = s.calc('Minutes per day', a, '+', b);
      s.calc(`Minutes in ${k} days`, day, '*', k);
      return `${name} spends ${a} minutes walking to school and ${b} minutes walking home. How many minutes does ${he} spend walking in ${k} days?`;
    },
  ],
  distance: [
    (r, s) => {
      const v = pick(r, VEHICLES);
      const speed = randInt(r, 3, 12) * 10;
      const h = randInt(r, 2, 6);
      s.calc('Distance', speed, '*', h);
      return pick(r, [
        `A ${v} travels at ${speed} km per hour for ${h} hours. How far does it go?`,
        `How many kilometers does a ${v} cover in ${h} hours at ${speed} km per hour?`,
      ]);
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const a = randInt(r, 1, 9);
      const b = randInt(r, 1, 9);
      const d = randInt(r, 2, 7);
      const day = s.calc('Kilometers per day', a, '+', b);
      s.calc(`Kilometers in ${d} days`, day, '*', d);
      return `${name} walks ${a} km in the morning and ${b} km in the evening. How many km does ${he} walk in ${d} days?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const k = randInt(r, 2, 5);
      const per = randInt(r, 20, 90);
      const done = randInt(r, 10, 200);
      const left = s.calc('Distance left', done + k * per, '-', done);
      s.calc('Kilometers per day', left, '/', k);
      return `A trip is ${done + k * per} km long. ${name} has driven ${done} km. ${cap(he)} drives the rest in ${k} equal days. How many km does ${he} drive each day?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const lap = randInt(r, 2, 9) * 100;
      const laps = randInt(r, 2, 8);
      s.calc('Meters run', lap, '*', laps);
      return `A track is ${lap} meters around. ${name} runs ${laps} laps. How many meters does ${he} run?`;
    },
  ],
  cooking: [
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const food = pick(r, BAKED);
      const t = randInt(r, 2, 6);
      const c = randInt(r, 6, 12);
      const e = randInt(r, 1, 9);
      const made = s.calc(`${cap(food)} baked`, t, '*', c);
      s.calc(`${cap(food)} left`, made, '-', e);
      return `${name} bakes ${t} trays of ${food} with ${c} on each tray. ${cap(he)} gives away ${e}. How many ${food} are left?`;
    },
    (r, s) => {
      const cups = randInt(r, 2, 5);
      const batches = randInt(r, 2, 6);
      s.calc('Cups of flour', cups, '*', batches);
      return pick(r, [
        `A recipe needs ${cups} cups of flour. How many cups are needed for ${batches} batches?`,
        `One batch of bread uses ${cups} cups of flour. How much flour do ${batches} batches use?`,
      ]);
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const per = randInt(r, 2, 4);
      const cakes = randInt(r, 2, 5);
      const eggs = per * cakes + randInt(r, 0, 10);
      const used = s.calc('Eggs used', per, '*', cakes);
      s.calc('Eggs left', eggs, '-', used);
      return `${name} has ${eggs} eggs. Each cake needs ${per} eggs and ${he} bakes ${cakes} cakes. How many eggs are left?`;
    },
    (r, s) => {
      const food = pick(r, BAKED);
      const guests = randInt(r, 2, 9);
      const each = randInt(r, 2, 5);
      s.calc(`${cap(food)} per guest`, guests * each, '/', guests);
      return `There are ${guests * each} ${food} shared equally by ${guests} guests. How many ${food} does each guest get?`;
    },
  ],
  savings: [
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const save = randInt(r, 2, 20);
      const w = randInt(r, 2, 10);
      s.calc('Money saved', save, '*', w);
      return pick(r, [
        `${name} saves $${save} each week. How much does ${he} save in ${w} weeks?`,
        `Each week ${name} puts $${save} in a piggy bank. How many dollars are in it after ${w} weeks?`,
      ]);
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const have = randInt(r, 5, 40);
      const save = randInt(r, 2, 10);
      const w = randInt(r, 2, 6);
      const spend = randInt(r, 1, have);
      const saved = s.calc('Money saved', save, '*', w);
      const total = s.calc('Money in all', have, '+', saved);
      s.calc('Money left', total, '-', spend);
      return `${name} has $${have}. ${cap(he)} saves $${save} a week for ${w} weeks and then spends $${spend}. How much money does ${he} have now?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const thing = pick(r, ['bike', 'game', 'guitar', 'tent', 'watch', 'scooter']);
      const save = randInt(r, 3, 10);
      const weeks = randInt(r, 2, 9);
      const have = randInt(r, 5, 30);
      const need = s.calc('Money still needed', have + save * weeks, '-', have);
      s.calc('Weeks of saving', need, '/', save);
      return `${name} wants a ${thing} that costs $${have + save * weeks}. ${cap(he)} has $${have} and saves $${save} each week. How many weeks must ${he} save?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const pay = randInt(r, 5, 15);
      const h = randInt(r, 2, 8);
      s.calc('Money earned', pay, '*', h);
      return `${name} earns $${pay} an hour and works ${h} hours. How much does ${he} earn?`;
    },
  ],
  school: [
    (r, s) => {
      const classes = randInt(r, 2, 6);
      const each = randInt(r, 15, 30);
      const absent = randInt(r, 1, 9);
      const all = s.calc('Students in all', classes, '*', each);
      s.calc('Students present', all, '-', absent);
      return `A school has ${classes} classes with ${each} students each. ${absent} students are absent. How many students are present?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const pages = randInt(r, 20, 90);
      const read = randInt(r, 5, pages - 1);
      s.calc('Pages left', pages, '-', read);
      return `${name}'s book has ${pages} pages. ${cap(he)} has read ${read} pages. How many pages are left?`;
    },
    (r, s) => {
      const kids = randInt(r, 2, 8);
      const each = randInt(r, 2, 9);
      s.calc('Pencils per student', kids * each, '/', kids);
      return `A teacher shares ${kids * each} pencils equally among ${kids} students. How many pencils does each student get?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const a = randInt(r, 50, 100);
      const b = randInt(r, 50, 100);
      const c = randInt(r, 50, 100);
      const ab = s.calc('First two tests', a, '+', b);
      s.calc('All three tests', ab, '+', c);
      return `${name} scored ${a}, ${b} and ${c} points on three tests. What is ${he === 'he' ? 'his' : 'her'} total score?`;
    },
  ],
  garden: [
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const plant = pick(r, PLANTS);
      const rows = randInt(r, 2, 9);
      const per = randInt(r, 3, 12);
      s.calc(`Number of ${plant}`, rows, '*', per);
      return `${name} plants ${rows} rows of ${plant} with ${per} in each row. How many ${plant} does ${he} plant?`;
    },
    (r, s) => {
      const plant = pick(r, PLANTS);
      const rows = randInt(r, 2, 6);
      const per = randInt(r, 3, 10);
      const died = randInt(r, 1, 5);
      const all = s.calc(`${cap(plant)} planted`, rows, '*', per);
      s.calc(`${cap(plant)} left`, all, '-', died);
      return `A garden has ${rows} rows of ${plant} with ${per} in each row. ${died} of them die. How many are left?`;
    },
    (r, s) => {
      const [name, he] = pick(r, PEOPLE);
      const a = randInt(r, 5, 40);
      const b = randInt(r, 5, 40);
      s.calc('Flowers in all', a, '+', b);
      return `${name} picks ${a} flowers in the morning and ${b} flowers in the afternoon. How many flowers does ${he} pick?`;
    },
    (r, s) => {
      const [name] = pick(r, PEOPLE);
      const pots = randInt(r, 2, 9);
      const each = randInt(r, 2, 6);
      s.calc('Seeds per pot', pots * each, '/', pots);
      return `${name} has ${pots * each} seeds and ${pots} pots. The seeds are shared equally. How many seeds go in each pot?`;
    },
  ],
};

/** One word problem of the given (or a random) category. */
export function generateMathProblem(rand: Random, category?: MathCategory): Draft {
  const cat = category ?? pick(rand, MATH_CATEGORIES);
  const s = new Solver();
  const question = pick(rand, SCENARIOS[cat])(rand, s);
  return {
    instruction: question,
    response: s.text(),
    category: cat,
    meta: { answer: s.steps[s.steps.length - 1]!.result, steps: s.steps },
  };
}

export function generateMathTask(opts: TaskOptions = {}): TaskSplits {
  return assembleSplits('math', [...MATH_CATEGORIES], (r) => generateMathProblem(r), {
    ...opts,
    defaultTrain: 2000,
    defaultTest: 200,
  });
}
