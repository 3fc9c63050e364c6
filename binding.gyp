{
  "targets": [
    {
      "target_name": "fedbiot_native",
      "sources": [
        "native/addon.cc",
        "native/pool.cc",
        "native/blas.cc",
        "native/elementwise.cc",
        "native/rows.cc",
        "native/weights.cc",
        "native/wgemm.cc",
        "native/matvec.cc",
        "native/attn_decode.cc",
        "native/gemm.cc",
        "native/bf16gemm.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "/usr/include/x86_64-linux-gnu"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wno-unused-function"],
      "libraries": ["-lopenblas", "-lpthread"],
      "conditions": [
        # The kernels use AVX2/FMA intrinsics; the target CPU (and CI) is x86-64-v3.
        ["target_arch=='x64'", { "cflags_cc": ["-march=x86-64-v3"] }]
      ]
    }
  ]
}
