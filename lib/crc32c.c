/*
 * CRC-32C (Castagnoli) for lib/crc32c.ts, compiled to WebAssembly by
 * scripts/build_crc32c_wasm.ts (clang --target=wasm32 -O3 -nostdlib). Table method,
 * slicing-by-16, over three stretches of the input at once (three independent chains keep
 * the CPU's load units busy), joined with the zlib combine algebra. No libc, no imports.
 *
 * Exports: init() builds the tables; buffer() is where the caller copies its bytes (BUFFER
 * bytes); update(crc, len) continues the finished CRC `crc` over the first `len` bytes there.
 */
#include <stdint.h>

#define POLY 0x82f63b78u
#define BUFFER (1u << 20)

static uint32_t T[16][256];
static uint32_t X2N[32];
static uint8_t BUF[BUFFER];

static uint32_t multmodp(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
  }
  return p;
}

/* x^(8n) modulo P: what a CRC register turns into when n zero bytes follow. */
static uint32_t x8nmodp(uint32_t n) {
  uint32_t xp = 1u << 31;
  for (int k = 3; n; n >>= 1, k++) {
    if (n & 1) xp = multmodp(X2N[k & 31], xp);
  }
  return xp;
}

__attribute__((export_name("init"))) void init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
    T[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++) {
    for (int s = 1; s < 16; s++) T[s][n] = (T[s - 1][n] >> 8) ^ T[0][T[s - 1][n] & 0xff];
  }
  uint32_t p = 1u << 30;
  X2N[0] = p;
  for (int n = 1; n < 32; n++) X2N[n] = p = multmodp(p, p);
}

__attribute__((export_name("buffer"))) uint8_t *buffer(void) { return BUF; }

static inline uint32_t ld(const uint8_t *p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

#define STEP16(c, q)                                                                        \
  do {                                                                                      \
    uint32_t a_ = (c) ^ ld(q), b_ = ld((q) + 4), d_ = ld((q) + 8), e_ = ld((q) + 12);        \
    (c) = T[15][a_ & 0xff] ^ T[14][(a_ >> 8) & 0xff] ^ T[13][(a_ >> 16) & 0xff] ^            \
          T[12][a_ >> 24] ^ T[11][b_ & 0xff] ^ T[10][(b_ >> 8) & 0xff] ^                     \
          T[9][(b_ >> 16) & 0xff] ^ T[8][b_ >> 24] ^ T[7][d_ & 0xff] ^                       \
          T[6][(d_ >> 8) & 0xff] ^ T[5][(d_ >> 16) & 0xff] ^ T[4][d_ >> 24] ^                \
          T[3][e_ & 0xff] ^ T[2][(e_ >> 8) & 0xff] ^ T[1][(e_ >> 16) & 0xff] ^ T[0][e_ >> 24]; \
  } while (0)

/* The raw register `c` continued over n bytes at p, one chain. */
static uint32_t chain(uint32_t c, const uint8_t *p, uint32_t n) {
  for (; n >= 16; p += 16, n -= 16) STEP16(c, p);
  for (; n; n--) c = T[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

__attribute__((export_name("update"))) uint32_t update(uint32_t crc, uint32_t n) {
  const uint8_t *p = BUF;
  uint32_t c = ~crc;
  uint32_t L = (n / 3) & ~15u;
  if (L >= 1024) {
    /* Three chains; the second and third start from 0, which the combine accounts for. */
    uint32_t c1 = 0, c2 = 0;
    for (uint32_t i = 0; i < L; i += 16) {
      STEP16(c, p + i);
      STEP16(c1, p + L + i);
      STEP16(c2, p + 2 * L + i);
    }
    uint32_t shift = x8nmodp(L);
    c = multmodp(shift, multmodp(shift, c) ^ c1) ^ c2;
    p += 3 * L;
    n -= 3 * L;
  }
  return ~chain(c, p, n);
}
