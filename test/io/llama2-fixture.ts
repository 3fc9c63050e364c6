/**
 * Builds a Llama-2 tokenizer.json from the vocabulary and merge priorities shipped in
 * llama-tokenizer-js, in the layout Hugging Face's converter produces for Llama-2
 * (Prepend/Replace normalizer, byte fallback, ByteFallback/Fuse/Strip decoder).
 */
import llamaTokenizer from 'llama-tokenizer-js';

export function llama2TokenizerJson(): { json: unknown; config: unknown } {
  const vocabById = llamaTokenizer.vocabById;
  const vocab: Record<string, number> = {};
  vocabById.forEach((t, i) => {
    vocab[t] = i;
  });
  const merges = [...llamaTokenizer.merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges,
    },
  };
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    legacy: true,
  };
  return { json, config };
}
