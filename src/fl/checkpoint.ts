// Checkpoints of a federated run: LoRA states as safetensors plus a JSON record of where the run
// stands. Every file is written to a temporary name and renamed, and the pointer `latest.json` is
// written last, so a crash leaves either the previous checkpoint or the new one, never half of one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { serializeSafetensors, deserializeSafetensors } from '../io/safetensors.js';
import { writeAtomic } from '../io/byte-source.js';
import type { TensorRecord } from '../io/types.js';
import type { LoraState } from '../fedbiot/lora-state.js';

export function stateToBuffer(s: LoraState, metadata: Record<string, string> = {}): Buffer {
  const m = new Map<string, TensorRecord>();
  for (const [k, v] of s) m.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
  return serializeSafetensors(m, { metadata });
}

export function bufferToState(buf: Uint8Array, label: string): LoraState {
  const { tensors } = deserializeSafetensors(buf, label);
  const s: LoraState = new Map();
  for (const [k, v] of tensors) s.set(k, { shape: [...v.shape], data: Float32Array.from(v.data) });
  return s;
}

export function saveState(file: string, s: LoraState): void {
  writeAtomic(file, stateToBuffer(s));
}

export function loadState(file: string): LoraState {
  return bufferToState(fs.readFileSync(file), file);
}

export interface RunCheckpoint<Extra = unknown> {
  /** Rounds completed so far (the next round to run). */
  completedRounds: number;
  emulatorVersion: number;
  files: { adapter: string; emulator: string | null; clients: Record<string, string>; states?: Record<string, string> };
  extra: Extra;
}

const RECORD = 'checkpoint.json';

export function checkpointName(completedRounds: number): string {
  return `round-${String(completedRounds).padStart(4, '0')}`;
}

/**
 * Writes the checkpoint after `completedRounds` rounds into its own folder (its record last), then
 * points latest.json at it; returns the folder's name.
 */
export function saveCheckpoint<E>(
  dir: string,
  c: {
    completedRounds: number;
    emulatorVersion: number;
    adapter: LoraState;
    emulator: LoraState | null;
    clients: Map<string, LoraState>;
    /** Other named states of the run (the compressed streams' held states). */
    states?: Record<string, LoraState>;
    extra: E;
  },
): string {
  const sub = checkpointName(c.completedRounds);
  const abs = path.join(dir, sub);
  fs.mkdirSync(abs, { recursive: true });
  saveState(path.join(abs, 'adapter.safetensors'), c.adapter);
  if (c.emulator) saveState(path.join(abs, 'emulator.safetensors'), c.emulator);
  const clients: Record<string, string> = {};
  for (const [name, s] of c.clients) {
    const f = `client-${name}.safetensors`;
    saveState(path.join(abs, f), s);
    clients[name] = path.join(sub, f);
  }
  const states: Record<string, string> = {};
  for (const [name, s] of Object.entries(c.states ?? {})) {
    const f = `state-${name}.safetensors`;
    saveState(path.join(abs, f), s);
    states[name] = path.join(sub, f);
  }
  const rec: RunCheckpoint<E> = {
    completedRounds: c.completedRounds,
    emulatorVersion: c.emulatorVersion,
    files: {
      adapter: path.join(sub, 'adapter.safetensors'),
      emulator: c.emulator ? path.join(sub, 'emulator.safetensors') : null,
      clients,
      ...(Object.keys(states).length > 0 ? { states } : {}),
    },
    extra: c.extra,
  };
  const text = JSON.stringify(rec, null, 2);
  writeAtomic(path.join(abs, RECORD), text);
  writeAtomic(path.join(dir, 'latest.json'), text);
  return sub;
}

/** The latest checkpoint, or the one after `completedRounds` rounds; null when absent. */
export function loadCheckpoint<E>(
  dir: string,
  completedRounds?: number,
):
  | (RunCheckpoint<E> & {
      adapter: LoraState;
      emulator: LoraState | null;
      clients: Map<string, LoraState>;
      states: Record<string, LoraState>;
    })
  | null {
  const p =
    completedRounds === undefined
      ? path.join(dir, 'latest.json')
      : path.join(dir, checkpointName(completedRounds), RECORD);
  if (!fs.existsSync(p)) return null;
  let rec: RunCheckpoint<E>;
  try {
    rec = JSON.parse(fs.readFileSync(p, 'utf8')) as RunCheckpoint<E>;
  } catch (e) {
    throw new Error(`checkpoint ${p} is unreadable: ${(e as Error).message}`);
  }
  const clients = new Map<string, LoraState>();
  for (const [k, f] of Object.entries(rec.files.clients)) clients.set(k, loadState(path.join(dir, f)));
  return {
    ...rec,
    adapter: loadState(path.join(dir, rec.files.adapter)),
    emulator: rec.files.emulator ? loadState(path.join(dir, rec.files.emulator)) : null,
    clients,
    states: Object.fromEntries(
      Object.entries(rec.files.states ?? {}).map(([k, f]) => [k, loadState(path.join(dir, f))]),
    ),
  };
}
