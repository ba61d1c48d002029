// The CUDA mask kernel's body (welt_mask_impl, extracted verbatim from kernels.cu into
// mask_impl.inc by tests/cuda_mask.rs) run on the CPU, where no GPU is: one std::thread per
// lane, __ballot_sync and __shfl_sync through a barrier of the warp's 32 threads, every warp of
// every block of the grid in turn. Random and edge masks (all allowed, all forbidden, forbidden
// only in the last word, single bits), finished rows, an out-of-range state, several grids and
// block sizes; the logits must equal a per-token mask's, padding between rows untouched.
// Built by tests/cuda_mask.rs: c++ -std=c++20 -O1 -pthread -DWELT_V=<V>u.
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
#include <cstdint>
#define __device__
#define __forceinline__ inline
#define WELT_FLAG_FINISHED 2u
#ifndef WELT_V
#error WELT_V
#endif
#define WELT_STATES 7u
#define WELT_MASK_WORDS ((WELT_V + 63u) / 64u)
struct welt_tables { const unsigned long long *masks; };
#define WELT_MASK(t, s, w) ((t).masks[(size_t)(s) * WELT_MASK_WORDS + (w)])
struct D3 { unsigned x, y, z; };
thread_local D3 threadIdx, blockIdx;
D3 blockDim, gridDim;
struct Warp {
  std::barrier<> *bar;
  unsigned long long vals[32];
  unsigned preds[32];
};
thread_local Warp *warp;
thread_local unsigned my_lane;
unsigned __ballot_sync(unsigned m, bool p) {
  if (m != 0xffffffffu) abort();
  warp->preds[my_lane] = p;
  warp->bar->arrive_and_wait();
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= warp->preds[i] << i;
  warp->bar->arrive_and_wait();
  return r;
}
unsigned long long __shfl_sync(unsigned m, unsigned long long v, int src) {
  if (m != 0xffffffffu || src < 0 || src > 31) abort();
  warp->vals[my_lane] = v;
  warp->bar->arrive_and_wait();
  unsigned long long r = warp->vals[src];
  warp->bar->arrive_and_wait();
  return r;
}
int __ffs(int x) { return __builtin_ffs(x); }
struct welt_f32 { typedef float T; };
inline void welt_neg_inf(welt_f32, float *p) { *p = -__builtin_inff(); }
#include "mask_impl.inc"
int main() {
  unsigned seed = 1;
  const unsigned V = WELT_V, W = WELT_MASK_WORDS, S = WELT_STATES;
  int fails = 0;
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<unsigned long long> masks(S * W);
    auto rnd = [&]() { seed = seed * 1103515245u + 12345u; return seed >> 8; };
    for (unsigned s = 0; s < S; ++s)
      for (unsigned w = 0; w < W; ++w) {
        unsigned long long m;
        switch ((s + rnd()) % 5) {
          case 0: m = ~0ull; break;
          case 1: m = 0; break;
          case 2: m = ~(1ull << (rnd() % 64)); break;
          case 3: m = (1ull << (rnd() % 64)); break;
          default: m = ((unsigned long long)rnd() << 40) ^ ((unsigned long long)rnd() << 20) ^ rnd();
        }
        if (s == 0) m = ~0ull;      // all allowed
        if (s == 1) m = 0;          // all forbidden
        if (s == 2) m = (w == W - 1) ? 0 : ~0ull; // forbidden only in the last word
        if (V % 64 && w == W - 1) m &= (1ull << (V % 64)) - 1; // padding bits clear
        masks[s * W + w] = m;
      }
    const unsigned B = 9, stride = V + 5;
    std::vector<unsigned short> states(B);
    std::vector<unsigned char> flags(B);
    for (unsigned r = 0; r < B; ++r) { states[r] = r < S ? r : (r == 8 ? 60000 : rnd() % S); flags[r] = r == 7 ? WELT_FLAG_FINISHED : 0; }
    std::vector<float> want(B * stride), got;
    for (size_t i = 0; i < want.size(); ++i) want[i] = (float)(i % 1000) * 0.5f;
    got = want;
    for (unsigned r = 0; r < B; ++r) {
      if (flags[r] || states[r] >= S) continue;
      for (unsigned tok = 0; tok < V; ++tok)
        if (!((masks[states[r] * W + tok / 64] >> (tok % 64)) & 1)) want[r * stride + tok] = -__builtin_inff();
    }
    unsigned gx[] = {1, 2, 3, (V + 16383) / 16384, 5};
    unsigned gy[] = {1, 4, 9, 3, 65535 > B ? B : 1};
    unsigned bx[] = {256, 32, 64, 256, 96};
    int k = trial % 5;
    gridDim = {gx[k], gy[k], 1}; blockDim = {bx[k], 1, 1};
    welt_tables t{masks.data()};
    for (unsigned by = 0; by < gridDim.y; ++by)
      for (unsigned bxi = 0; bxi < gridDim.x; ++bxi)
        for (unsigned wp = 0; wp < blockDim.x / 32; ++wp) {
          Warp wv; std::barrier<> bar(32); wv.bar = &bar;
          std::vector<std::thread> th;
          for (unsigned l = 0; l < 32; ++l)
            th.emplace_back([&, l, wp, bxi, by] {
              warp = &wv; my_lane = l;
              threadIdx = {wp * 32 + l, 0, 0}; blockIdx = {bxi, by, 0};
              welt_mask_impl<welt_f32>(t, got.data(), stride, states.data(), flags.data(), B);
            });
          for (auto &x : th) x.join();
        }
    if (memcmp(got.data(), want.data(), got.size() * sizeof(float))) {
      for (size_t i = 0; i < got.size(); ++i) if (memcmp(&got[i], &want[i], 4)) { printf("V=%u trial %d: differs at %zu (row %zu tok %zu)\n", V, trial, i, i / stride, i % stride); break; }
      fails++;
    }
  }
  printf("V=%u: %s\n", V, fails ? "FAIL" : "ok");
  return fails != 0;
}
