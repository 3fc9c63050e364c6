// N-API glue: positional arguments (src/kernels/native.ts unpacks the contract's objects),
// zero-copy typed array access, and cheap length checks so that a bad call throws instead of
// crashing the process.
#include <napi.h>

#include <algorithm>
#include <string>

#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "weights.h"

namespace {

struct Args {
  const Napi::CallbackInfo& info;
  const char* op;

  double num(size_t i) const { return info[i].As<Napi::Number>().DoubleValue(); }
  int64_t i64(size_t i) const { return static_cast<int64_t>(info[i].As<Napi::Number>().DoubleValue()); }
  bool flag(size_t i) const { return info[i].ToBoolean().Value(); }
  bool isNull(size_t i) const { return info[i].IsNull() || info[i].IsUndefined(); }

  void* raw(size_t i, napi_typedarray_type want, const char* typeName, int64_t need) const {
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    if (i >= info.Length() || !info[i].IsTypedArray() ||
        napi_get_typedarray_info(info.Env(), info[i], &type, &len, &data, nullptr, nullptr) != napi_ok ||
        type != want) {
      throw Napi::TypeError::New(info.Env(), std::string("fedbiot_native.") + op + ": argument " +
                                                 std::to_string(i) + " must be a " + typeName);
    }
    if (need > 0 && static_cast<int64_t>(len) < need) {
      throw Napi::RangeError::New(info.Env(), std::string("fedbiot_native.") + op + ": argument " +
                                                  std::to_string(i) + " has length " + std::to_string(len) +
                                                  ", needs " + std::to_string(need));
    }
    return data;  // already offset by byteOffset
  }
  float* f32(size_t i, int64_t need) const {
    return static_cast<float*>(raw(i, napi_float32_array, "Float32Array", need));
  }
  float* f32OrNull(size_t i, int64_t need) const { return isNull(i) ? nullptr : f32(i, need); }
  int32_t* i32(size_t i, int64_t need) const {
    return static_cast<int32_t*>(raw(i, napi_int32_array, "Int32Array", need));
  }
};

#define ARGS(name) Args a{info, name}

// Elements touched by a strided, batched matrix: last row start + row length.
int64_t span(int64_t off, int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld) {
  if (batch <= 0 || rows <= 0 || cols <= 0) return 0;
  return off + (batch - 1) * stride + (rows - 1) * ld + cols;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  ARGS("gemm");
  fb::GemmArgs g;
  g.transA = a.flag(0);
  g.transB = a.flag(1);
  g.M = a.i64(2), g.N = a.i64(3), g.K = a.i64(4);
  g.alpha = static_cast<float>(a.num(5));
  const int64_t aOff = a.i64(7), bOff = a.i64(11), cOff = a.i64(16);
  g.lda = a.i64(8), g.strideA = a.i64(9);
  g.ldb = a.i64(12), g.strideB = a.i64(13);
  g.beta = static_cast<float>(a.num(14));
  g.ldc = a.i64(17), g.strideC = a.i64(18);
  g.batch = a.i64(19);
  const int64_t K = g.K > 0 ? g.K : 0;
  // BLAS rejects (and only prints) a leading dimension shorter than the stored row.
  if (g.lda < (g.transA ? g.M : K) || g.ldb < (g.transB ? K : g.N) ||
      g.ldc < g.N)
    throw Napi::RangeError::New(info.Env(), "fedbiot_native.gemm: leading dimension shorter than a row");
  g.A = a.f32(6, span(aOff, g.batch, g.strideA, g.transA ? K : g.M, g.transA ? g.M : K, g.lda)) + aOff;
  g.B = a.f32(10, span(bOff, g.batch, g.strideB, g.transB ? g.N : K, g.transB ? K : g.N, g.ldb)) + bOff;
  g.C = a.f32(15, span(cOff, g.batch, g.strideC, g.M, g.N, g.ldc)) + cOff;
  fb::gemm(g);
  return info.Env().Undefined();
}

// weightGemm(format, W, N, K, transW, M, alpha, X, xOff, ldx, beta, Y, yOff, ldy)
Napi::Value WeightGemm(const Napi::CallbackInfo& info) {
  ARGS("weightGemm");
  fb::WeightGemmArgs g;
  g.format = static_cast<int>(a.i64(0));
  if (g.format < 0 || g.format > 4) throw Napi::RangeError::New(info.Env(), "fedbiot_native.weightGemm: unknown weight format id");
  g.N = a.i64(2), g.K = a.i64(3);
  g.transW = a.flag(4);
  g.M = a.i64(5);
  g.alpha = static_cast<float>(a.num(6));
  const int64_t xOff = a.i64(8), yOff = a.i64(12);
  g.ldx = a.i64(9);
  g.beta = static_cast<float>(a.num(10));
  g.ldy = a.i64(13);
  if (g.N < 0 || g.K < 0 || g.M < 0) throw Napi::RangeError::New(info.Env(), "fedbiot_native.weightGemm: negative size");
  const int64_t inCols = g.transW ? g.K : g.N, outCols = g.transW ? g.N : g.K;
  if (g.ldx < inCols || g.ldy < outCols)
    throw Napi::RangeError::New(info.Env(), "fedbiot_native.weightGemm: leading dimension shorter than a row");
  g.W = static_cast<const uint8_t*>(
      a.raw(1, napi_uint8_array, "Uint8Array", g.N * fb::wformat_row_bytes(static_cast<fb::WFormat>(g.format), g.K)));
  g.X = a.f32(7, span(xOff, 1, 0, g.M, inCols, g.ldx)) + xOff;
  g.Y = a.f32(11, span(yOff, 1, 0, g.M, outCols, g.ldy)) + yOff;
  fb::weight_gemm(g);
  return info.Env().Undefined();
}

// weightGroupGemm(K, transW, M, alpha, beta, shared, sharedOff, ldShared, parts) with parts an array of
// [format, W (Uint8Array, or Float32Array for f32), N, io, ioOff, ldio].
Napi::Value WeightGroupGemm(const Napi::CallbackInfo& info) {
  ARGS("weightGroupGemm");
  Napi::Env env = info.Env();
  fb::WeightGroupArgs g;
  g.K = a.i64(0);
  g.transW = a.flag(1);
  g.M = a.i64(2);
  g.alpha = static_cast<float>(a.num(3));
  g.beta = static_cast<float>(a.num(4));
  const int64_t sOff = a.i64(6);
  g.ldShared = a.i64(7);
  if (g.K < 0 || g.M < 0 || g.ldShared < g.K)
    throw Napi::RangeError::New(env, "fedbiot_native.weightGroupGemm: bad K, M or shared leading dimension");
  g.shared = a.f32(5, span(sOff, 1, 0, g.M, g.K, g.ldShared)) + sOff;
  if (!info[8].IsArray()) throw Napi::TypeError::New(env, "fedbiot_native.weightGroupGemm: parts must be an array");
  Napi::Array parts = info[8].As<Napi::Array>();
  for (uint32_t i = 0; i < parts.Length(); i++) {
    Napi::Value pv = parts.Get(i);
    if (!pv.IsArray() || pv.As<Napi::Array>().Length() != 6)
      throw Napi::TypeError::New(env, "fedbiot_native.weightGroupGemm: each part is [format, W, N, io, ioOff, ldio]");
    Napi::Array pa = pv.As<Napi::Array>();
    fb::GroupPart p;
    p.format = pa.Get(0u).As<Napi::Number>().Int32Value();
    p.N = static_cast<int64_t>(pa.Get(2u).As<Napi::Number>().DoubleValue());
    const int64_t ioOff = static_cast<int64_t>(pa.Get(4u).As<Napi::Number>().DoubleValue());
    p.ldio = static_cast<int64_t>(pa.Get(5u).As<Napi::Number>().DoubleValue());
    if (p.format < 0 || p.format > 4 || p.N < 0 || p.ldio < p.N || ioOff < 0)
      throw Napi::RangeError::New(env, "fedbiot_native.weightGroupGemm: part " + std::to_string(i) +
                                           ": bad format id, N or leading dimension");
    auto typed = [&](Napi::Value v, napi_typedarray_type& type, size_t& len) -> void* {
      void* data = nullptr;
      if (!v.IsTypedArray() || napi_get_typedarray_info(env, v, &type, &len, &data, nullptr, nullptr) != napi_ok)
        throw Napi::TypeError::New(env, "fedbiot_native.weightGroupGemm: part " + std::to_string(i) +
                                            ": W and io must be typed arrays");
      return data;
    };
    napi_typedarray_type wt, it;
    size_t wlen = 0, ilen = 0;
    void* w = typed(pa.Get(1u), wt, wlen);
    const int64_t wbytes = p.N * fb::wformat_row_bytes(static_cast<fb::WFormat>(p.format), g.K);
    const bool wok = (wt == napi_uint8_array && static_cast<int64_t>(wlen) >= wbytes) ||
                     (wt == napi_float32_array && p.format == 0 && static_cast<int64_t>(wlen) * 4 >= wbytes);
    if (!wok)
      throw Napi::RangeError::New(env, "fedbiot_native.weightGroupGemm: part " + std::to_string(i) +
                                           ": W must be a Uint8Array (or a Float32Array for f32) of " +
                                           std::to_string(wbytes) + " bytes");
    p.W = static_cast<const uint8_t*>(w);
    void* io = typed(pa.Get(3u), it, ilen);
    if (it != napi_float32_array || static_cast<int64_t>(ilen) < span(ioOff, 1, 0, g.M, p.N, p.ldio))
      throw Napi::RangeError::New(env, "fedbiot_native.weightGroupGemm: part " + std::to_string(i) +
                                           ": io must be a Float32Array covering M rows of N values");
    p.io = static_cast<float*>(io) + ioOff;
    g.parts.push_back(p);
  }
  fb::weight_group_gemm(g);
  return env.Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  ARGS("add");
  int64_t n = a.i64(3);
  fb::add(a.f32(0, n), a.f32(1, n), a.f32(2, n), n);
  return info.Env().Undefined();
}
Napi::Value Mul(const Napi::CallbackInfo& info) {
  ARGS("mul");
  int64_t n = a.i64(3);
  fb::mul(a.f32(0, n), a.f32(1, n), a.f32(2, n), n);
  return info.Env().Undefined();
}
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  ARGS("axpy");
  int64_t n = a.i64(3);
  fb::axpy(static_cast<float>(a.num(0)), a.f32(1, n), a.f32(2, n), n);
  return info.Env().Undefined();
}
Napi::Value Scale(const Napi::CallbackInfo& info) {
  ARGS("scale");
  int64_t n = a.i64(3);
  fb::scale(static_cast<float>(a.num(0)), a.f32(1, n), a.f32(2, n), n);
  return info.Env().Undefined();
}
Napi::Value Fill(const Napi::CallbackInfo& info) {
  ARGS("fill");
  int64_t n = a.i64(2);
  fb::fill(a.f32(0, n), static_cast<float>(a.num(1)), n);
  return info.Env().Undefined();
}
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  ARGS("sumSquares");
  int64_t n = a.i64(1);
  return Napi::Number::New(info.Env(), fb::sum_squares(a.f32(0, n), n));
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  ARGS("embeddingForward");
  int64_t N = a.i64(3), D = a.i64(4);
  fb::embedding_forward(a.f32(0, 0), a.i32(1, N), a.f32(2, N * D), N, D);
  return info.Env().Undefined();
}
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  ARGS("embeddingBackward");
  int64_t N = a.i64(3), D = a.i64(4);
  fb::embedding_backward(a.f32(0, N * D), a.i32(1, N), a.f32(2, 0), N, D);
  return info.Env().Undefined();
}

Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  ARGS("rmsnormForward");
  int64_t N = a.i64(4), D = a.i64(5);
  fb::rmsnorm_forward(a.f32(0, N * D), a.f32(1, D), a.f32(2, N * D), a.f32(3, N), N, D,
                      static_cast<float>(a.num(6)));
  return info.Env().Undefined();
}
Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  ARGS("rmsnormBackward");
  int64_t N = a.i64(6), D = a.i64(7);
  fb::rmsnorm_backward(a.f32(0, N * D), a.f32(1, N * D), a.f32(2, D), a.f32(3, N), a.f32OrNull(4, N * D),
                       a.f32OrNull(5, D), N, D);
  return info.Env().Undefined();
}

Napi::Value Rope(const Napi::CallbackInfo& info, bool backward) {
  ARGS(backward ? "ropeBackward" : "ropeForward");
  int64_t B = a.i64(3), T = a.i64(4), H = a.i64(5), Dh = a.i64(6), pos = a.i64(7);
  int64_t n = B * T * H * Dh;
  const float* x = a.f32(0, n);
  float* out = a.f32(1, n);
  const float* inv = a.f32(2, Dh / 2);
  if (backward) fb::rope_backward(x, out, inv, B, T, H, Dh, pos);
  else fb::rope_forward(x, out, inv, B, T, H, Dh, pos);
  return info.Env().Undefined();
}
Napi::Value RopeForward(const Napi::CallbackInfo& info) { return Rope(info, false); }
Napi::Value RopeBackward(const Napi::CallbackInfo& info) { return Rope(info, true); }

// attentionForward(q, k, v, out, probs, keyMask, B, T, S, H, Hkv, Dh, qOffset, scale, causal, window)
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  ARGS("attentionForward");
  fb::AttnArgs p{};
  p.B = a.i64(6), p.T = a.i64(7), p.S = a.i64(8), p.H = a.i64(9), p.Hkv = a.i64(10), p.Dh = a.i64(11);
  p.qOffset = a.i64(12);
  p.scale = static_cast<float>(a.num(13));
  p.causal = a.flag(14);
  p.window = a.i64(15);
  if (p.window < 0) throw Napi::RangeError::New(info.Env(), "attentionForward: window < 0");
  if (p.Hkv <= 0 || p.H % p.Hkv != 0) throw Napi::RangeError::New(info.Env(), "attentionForward: H % Hkv != 0");
  const int64_t nq = p.B * p.T * p.H * p.Dh, nk = p.B * p.S * p.Hkv * p.Dh;
  p.q = a.f32(0, nq), p.k = a.f32(1, nk), p.v = a.f32(2, nk);
  p.out = a.f32(3, nq);
  p.probs = a.f32(4, p.B * p.H * p.T * p.S);
  p.keyMask = a.f32OrNull(5, p.B * p.S);
  fb::attention_forward(p);
  return info.Env().Undefined();
}

// attentionBackward(dOut, q, k, v, probs, dq, dk, dv, B, T, S, H, Hkv, Dh, scale)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  ARGS("attentionBackward");
  fb::AttnArgs p{};
  p.B = a.i64(8), p.T = a.i64(9), p.S = a.i64(10), p.H = a.i64(11), p.Hkv = a.i64(12), p.Dh = a.i64(13);
  p.scale = static_cast<float>(a.num(14));
  if (p.Hkv <= 0 || p.H % p.Hkv != 0) throw Napi::RangeError::New(info.Env(), "attentionBackward: H % Hkv != 0");
  const int64_t nq = p.B * p.T * p.H * p.Dh, nk = p.B * p.S * p.Hkv * p.Dh;
  p.dOut = a.f32(0, nq), p.q = a.f32(1, nq), p.k = a.f32(2, nk), p.v = a.f32(3, nk);
  p.probs = a.f32(4, p.B * p.H * p.T * p.S);
  p.dq = a.f32(5, nq), p.dk = a.f32(6, nk), p.dv = a.f32(7, nk);
  fb::attention_backward(p);
  return info.Env().Undefined();
}

Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  ARGS("swigluForward");
  int64_t n = a.i64(3);
  fb::swiglu_forward(a.f32(0, n), a.f32(1, n), a.f32(2, n), n);
  return info.Env().Undefined();
}
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  ARGS("swigluBackward");
  int64_t n = a.i64(5);
  fb::swiglu_backward(a.f32(0, n), a.f32(1, n), a.f32(2, n), a.f32(3, n), a.f32(4, n), n);
  return info.Env().Undefined();
}
Napi::Value SiluForward(const Napi::CallbackInfo& info) {
  ARGS("siluForward");
  int64_t n = a.i64(2);
  fb::silu_forward(a.f32(0, n), a.f32(1, n), n);
  return info.Env().Undefined();
}
Napi::Value SiluBackward(const Napi::CallbackInfo& info) {
  ARGS("siluBackward");
  int64_t n = a.i64(3);
  fb::silu_backward(a.f32(0, n), a.f32(1, n), a.f32(2, n), n);
  return info.Env().Undefined();
}

// Row kernels with (in, out, N, V) or (dOut, y, dx, N, V).
#define ROW2(Fn, name, impl)                                              \
  Napi::Value Fn(const Napi::CallbackInfo& info) {                        \
    ARGS(name);                                                           \
    int64_t N = a.i64(2), V = a.i64(3);                                   \
    impl(a.f32(0, N * V), a.f32(1, N * V), N, V);                         \
    return info.Env().Undefined();                                        \
  }
#define ROW3(Fn, name, impl)                                              \
  Napi::Value Fn(const Napi::CallbackInfo& info) {                        \
    ARGS(name);                                                           \
    int64_t N = a.i64(3), V = a.i64(4);                                   \
    impl(a.f32(0, N * V), a.f32(1, N * V), a.f32(2, N * V), N, V);        \
    return info.Env().Undefined();                                        \
  }
ROW2(SoftmaxForward, "softmaxForward", fb::softmax_forward)
ROW3(SoftmaxBackward, "softmaxBackward", fb::softmax_backward)
ROW2(LogSoftmaxForward, "logSoftmaxForward", fb::log_softmax_forward)
ROW3(LogSoftmaxBackward, "logSoftmaxBackward", fb::log_softmax_backward)

void checkTargets(const Args& a, const int32_t* t, int64_t N, int64_t V, int32_t ignore) {
  for (int64_t i = 0; i < N; i++) {
    if (t[i] != ignore && (t[i] < 0 || t[i] >= V)) {
      throw Napi::RangeError::New(a.info.Env(), std::string("fedbiot_native.") + a.op + ": target " +
                                                    std::to_string(t[i]) + " at row " + std::to_string(i) +
                                                    " is outside [0, " + std::to_string(V) + ")");
    }
  }
}

// crossEntropyForward(logits, targets, lse, N, V, ignoreIndex) -> [sum, count]
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  ARGS("crossEntropyForward");
  int64_t N = a.i64(3), V = a.i64(4);
  int32_t ignore = static_cast<int32_t>(a.i64(5));
  const int32_t* t = a.i32(1, N);
  checkTargets(a, t, N, V, ignore);
  int64_t count = 0;
  double sum = fb::cross_entropy_forward(a.f32(0, N * V), t, a.f32(2, N), N, V, ignore, &count);
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r.Set(uint32_t(0), Napi::Number::New(info.Env(), sum));
  r.Set(uint32_t(1), Napi::Number::New(info.Env(), static_cast<double>(count)));
  return r;
}
// crossEntropyBackward(logits, targets, lse, dLogits, N, V, ignoreIndex, gradScale)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  ARGS("crossEntropyBackward");
  int64_t N = a.i64(4), V = a.i64(5);
  int32_t ignore = static_cast<int32_t>(a.i64(6));
  const int32_t* t = a.i32(1, N);
  checkTargets(a, t, N, V, ignore);
  fb::cross_entropy_backward(a.f32(0, N * V), t, a.f32(2, N), a.f32(3, N * V), N, V, ignore,
                             static_cast<float>(a.num(7)));
  return info.Env().Undefined();
}

// klForward(teacher, student, studentLse, rowWeight, N, V, teacherIsProbs)
Napi::Value KlForward(const Napi::CallbackInfo& info) {
  ARGS("klForward");
  int64_t N = a.i64(4), V = a.i64(5);
  double r = fb::kl_forward(a.f32(0, N * V), a.f32(1, N * V), a.f32(2, N), a.f32OrNull(3, N), N, V, a.flag(6));
  return Napi::Number::New(info.Env(), r);
}
// klBackward(teacher, student, studentLse, rowWeight, dStudent, N, V, teacherIsProbs, gradScale)
Napi::Value KlBackward(const Napi::CallbackInfo& info) {
  ARGS("klBackward");
  int64_t N = a.i64(5), V = a.i64(6);
  fb::kl_backward(a.f32(0, N * V), a.f32(1, N * V), a.f32(2, N), a.f32OrNull(3, N), a.f32(4, N * V), N, V,
                  a.flag(7), static_cast<float>(a.num(8)));
  return info.Env().Undefined();
}

// nmseForward(student, teacher, n) -> [value, denom]
Napi::Value NmseForward(const Napi::CallbackInfo& info) {
  ARGS("nmseForward");
  int64_t n = a.i64(2);
  double value = 0, denom = 0;
  fb::nmse_forward(a.f32(0, n), a.f32(1, n), n, &value, &denom);
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r.Set(uint32_t(0), Napi::Number::New(info.Env(), value));
  r.Set(uint32_t(1), Napi::Number::New(info.Env(), denom));
  return r;
}
// nmseBackward(student, teacher, dStudent, n, denom, gradScale)
Napi::Value NmseBackward(const Napi::CallbackInfo& info) {
  ARGS("nmseBackward");
  int64_t n = a.i64(3);
  fb::nmse_backward(a.f32(0, n), a.f32(1, n), a.f32(2, n), n, a.num(4), static_cast<float>(a.num(5)));
  return info.Env().Undefined();
}

// adamwStep(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step, gradScale)
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  ARGS("adamwStep");
  fb::AdamArgs p{};
  p.n = a.i64(4);
  p.param = a.f32(0, p.n);
  p.grad = a.f32(1, p.n);
  p.m = a.f32(2, p.n);
  p.v = a.f32(3, p.n);
  p.lr = a.num(5), p.beta1 = a.num(6), p.beta2 = a.num(7), p.eps = a.num(8), p.weightDecay = a.num(9);
  p.step = a.i64(10);
  p.gradScale = a.num(11);
  fb::adamw_step(p);
  return info.Env().Undefined();
}
// sgdStep(param, grad, buf, n, lr, momentum, weightDecay, gradScale)
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  ARGS("sgdStep");
  int64_t n = a.i64(3);
  fb::sgd_step(a.f32(0, n), a.f32(1, n), a.f32OrNull(2, n), n, a.num(4), a.num(5), a.num(6), a.num(7));
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  ARGS("setThreads");
  fb::set_threads(static_cast<int>(a.i64(0)));
  return info.Env().Undefined();
}
// The gemm paths this CPU can run, best first; the current one; forcing one (throws if unavailable).
Napi::Value GemmPaths(const Napi::CallbackInfo& info) {
  auto paths = fb::gemm_paths_available();
  Napi::Array out = Napi::Array::New(info.Env(), paths.size());
  for (size_t i = 0; i < paths.size(); i++) out.Set(static_cast<uint32_t>(i), paths[i]);
  return out;
}
Napi::Value GemmPath(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fb::gemm_path_name(fb::gemm_path()));
}
Napi::Value SetGemmPath(const Napi::CallbackInfo& info) {
  const std::string name = info[0].ToString().Utf8Value();
  if (!fb::set_gemm_path(name))
    throw Napi::Error::New(info.Env(), "gemm path '" + name + "' is not available on this CPU (available: " +
                                           [] { std::string s; for (auto& p : fb::gemm_paths_available()) s += (s.empty() ? "" : ", ") + p; return s; }() + ")");
  return info.Env().Undefined();
}

Napi::Value PeakGflops(const Napi::CallbackInfo& info) {
  ARGS("peakGflops");
  return Napi::Number::New(info.Env(), fb::peak_gflops(a.i64(0)));
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fb::get_threads());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  fb::get_threads();  // start the pool and set OpenBLAS threads from the default
#define EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  EXPORT("gemm", Gemm);
  EXPORT("weightGemm", WeightGemm);
  EXPORT("weightGroupGemm", WeightGroupGemm);
  EXPORT("add", Add);
  EXPORT("mul", Mul);
  EXPORT("axpy", Axpy);
  EXPORT("scale", Scale);
  EXPORT("fill", Fill);
  EXPORT("sumSquares", SumSquares);
  EXPORT("embeddingForward", EmbeddingForward);
  EXPORT("embeddingBackward", EmbeddingBackward);
  EXPORT("rmsnormForward", RmsnormForward);
  EXPORT("rmsnormBackward", RmsnormBackward);
  EXPORT("ropeForward", RopeForward);
  EXPORT("ropeBackward", RopeBackward);
  EXPORT("attentionForward", AttentionForward);
  EXPORT("attentionBackward", AttentionBackward);
  EXPORT("swigluForward", SwigluForward);
  EXPORT("swigluBackward", SwigluBackward);
  EXPORT("siluForward", SiluForward);
  EXPORT("siluBackward", SiluBackward);
  EXPORT("softmaxForward", SoftmaxForward);
  EXPORT("softmaxBackward", SoftmaxBackward);
  EXPORT("logSoftmaxForward", LogSoftmaxForward);
  EXPORT("logSoftmaxBackward", LogSoftmaxBackward);
  EXPORT("crossEntropyForward", CrossEntropyForward);
  EXPORT("crossEntropyBackward", CrossEntropyBackward);
  EXPORT("klForward", KlForward);
  EXPORT("klBackward", KlBackward);
  EXPORT("nmseForward", NmseForward);
  EXPORT("nmseBackward", NmseBackward);
  EXPORT("adamwStep", AdamwStep);
  EXPORT("sgdStep", SgdStep);
  EXPORT("setThreads", SetThreads);
  EXPORT("getThreads", GetThreads);
  EXPORT("gemmPaths", GemmPaths);
  EXPORT("peakGflops", PeakGflops);
  EXPORT("gemmPath", GemmPath);
  EXPORT("setGemmPath", SetGemmPath);
#undef EXPORT
  return exports;
}

}  // namespace

NODE_API_MODULE(fedbiot_native, Init)
