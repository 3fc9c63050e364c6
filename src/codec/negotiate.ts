// What peers agree on at join: the codec, the top-k fraction, the block size and the wire format.
// The server proposes from its config; a client that cannot decode it is refused with the reason
// (an older client simply lacks the codec in its offer).
import { z } from 'zod';
import { CODECS, DEFAULT_BLOCK, WIRE_VERSION, type CodecName } from './wire.js';

/** The config's `compression` block. */
export interface Compression {
  codec: CodecName;
  /** Fraction of each tensor's entries uploaded (largest first, error feedback on the client); null = dense. */
  topk: number | null;
}

export const NO_COMPRESSION: Compression = { codec: 'none', topk: null };

/** What a peer can decode. */
export const codecOfferSchema = z.strictObject({
  formats: z.array(z.number().int()).min(1),
  codecs: z.array(z.enum(CODECS)).min(1),
  topk: z.boolean(),
});
export type CodecOffer = z.infer<typeof codecOfferSchema>;

/** The join answer's part about the codec; the layout ids pin the tensors both sides expect. */
export const codecAgreementSchema = z.strictObject({
  format: z.number().int(),
  codec: z.enum(CODECS),
  topk: z.number().gt(0).max(1).nullable(),
  blockSize: z.number().int().positive().max(0xffff),
  layouts: z.record(z.string(), z.number().int().nonnegative()),
});
export type CodecAgreement = z.infer<typeof codecAgreementSchema>;

/** Everything this build decodes. */
export function localOffer(): CodecOffer {
  return { formats: [WIRE_VERSION], codecs: [...CODECS], topk: true };
}

/**
 * The agreement for a peer's offer, or an Error saying what the peer lacks. Top-k is only used on
 * uploads (the client keeps the error feedback), so a peer must be able to encode it.
 */
export function negotiate(
  wanted: Compression,
  offer: CodecOffer,
  layouts: Record<string, number>,
  peer: string,
): CodecAgreement {
  if (!offer.formats.includes(WIRE_VERSION))
    throw new Error(
      `${peer}: speaks compressed-update formats [${offer.formats.join(', ')}], this server needs ${WIRE_VERSION}`,
    );
  if (!offer.codecs.includes(wanted.codec))
    throw new Error(`${peer}: cannot use codec '${wanted.codec}' (it offers ${offer.codecs.join(', ')})`);
  if (wanted.topk !== null && !offer.topk)
    throw new Error(`${peer}: does not support top-k sparsification, which compression.topk asks for`);
  return {
    format: WIRE_VERSION,
    codec: wanted.codec,
    topk: wanted.topk,
    blockSize: DEFAULT_BLOCK[wanted.codec] || 1,
    layouts: { ...layouts },
  };
}
