/* The selective scan on the CPU: forward and backward, fp32 and fp64, one OpenMP parallel region per call.
 *
 * Compiled and loaded at first use by nnunetv2_mamba/ops/cpu_kernel.py; the kernel body is scan_cpu_kernel.h,
 * included once per precision. Shapes and layouts are in ScanShape (below) and in the docstrings of
 * nnunetv2_mamba/ops/scan_cpu.py, which is the only caller.
 *
 * exp and log1p for fp32 are written out here (Cephes' polynomials, about 1 ulp) with selects instead of
 * branches, so that gcc and clang vectorise the loops that call them without -ffast-math: -ffast-math would
 * link crtfastmath.o into the library (gcc 12 does so even for -shared), which turns on flush-to-zero for the
 * whole process when the library loads, and glibc's vector expf (libmvec) exists only behind -ffast-math.
 * fp64 uses libm (scalar; it is there for gradient checks, not speed).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* channels per work item: one AVX-512 or two AVX2 vectors of fp32 */
#define LANES 16

typedef struct {
    int64_t batch, channels, length, d_state, groups;
    int64_t segment;        /* positions between two saved states (checkpoints) */
    int64_t slabs;          /* backward work items per (batch, group), each with its own dB/dC partial sums */
    int64_t threads;
    int64_t delta_softplus;
    /* element strides over (batch, position); the channel stride of u, delta, z and grad_out is 1, and every
       (b, L, d) output is contiguous */
    int64_t u_b, u_l, delta_b, delta_l, z_b, z_l, grad_b, grad_l;
    /* element strides of B and C over (batch, group, position); the state stride is 1 */
    int64_t B_b, B_g, B_l, C_b, C_g, C_l;
} ScanShape;

static inline float exp_f32(float x) {
    /* x = k ln2 + r with |r| <= ln2 / 2, k rounded to nearest by adding 1.5 * 2^23 (float arithmetic only: no
       float-to-int conversion, which would be undefined for NaN; a NaN stays NaN through r). Below -87.3, where
       exp(x) < 2^-126, the result is 0 (not a denormal: an absolute error under 1.2e-38); above 88.7, +inf. */
    const float shifter = 12582912.0f;
    float clamped = x < -87.3365447f ? -87.3365447f : x;
    clamped = clamped > 88.3762626f ? 88.3762626f : clamped;
    float shifted = clamped * 1.44269504088896341f + shifter, k = shifted - shifter;
    float r = clamped - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    bits = (bits - 0x4b400000u + 127u) << 23;  /* 2^k: k + 127 in [1, 254] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float result = p * scale;
    result = x < -87.3365447f ? 0.0f : result;
    return x > 88.7228391f ? INFINITY : result;
}

static inline float log_f32(float x) {
    /* log of a finite x >= 1 (and NaN -> NaN): x = m 2^k with m in [sqrt(1/2), sqrt(2)) */
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t k = (int32_t)(bits >> 23) - 127;
    uint32_t mantissa = (bits & 0x007fffffu) | 0x3f800000u;
    float m;
    memcpy(&m, &mantissa, sizeof m);
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    float kf = (float)(k + big), f = m - 1.0f, z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float y = f * z * p - 2.12194440e-4f * kf - 0.5f * z;
    float result = f + y + 0.693359375f * kf;
    return x == x ? result : x;
}

static inline float log1p_f32(float e) {
    /* log(1 + e) for e >= 0, accurate for tiny e too: log(w) * e / (w - 1) with w = 1 + e rounded (both sides
       computed, then selected: no branch, so that loops calling it vectorise) */
    float w = 1.0f + e, shift = w - 1.0f, rescaled = log_f32(w) * (e / shift);
    return shift == 0.0f ? e : rescaled;
}

#define real float
#define NAME(x) x##_f32
#define EXP exp_f32
#define LOG1P log1p_f32
#include "scan_cpu_kernel.h"
#undef real
#undef NAME
#undef EXP
#undef LOG1P

#define real double
#define NAME(x) x##_f64
#define EXP exp
#define LOG1P log1p
#include "scan_cpu_kernel.h"
