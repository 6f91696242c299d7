/* Kernel body of scan_cpu.c, included once per precision with real, NAME(x), EXP(x) and LOG1P(x) defined.
 *
 * A block is LANES consecutive channels of one B/C group (the last block of a group may be narrower; its missing
 * lanes compute zeros and are never stored). The block's state h (N x LANES) lives in a small per-thread buffer
 * that stays in L1, the time loop runs inside, and every inner loop is over the LANES channels, contiguous in
 * memory, marked "omp simd" so that it vectorises whatever the compiler's unrolling heuristics decide. Work
 * items are claimed dynamically, so a thread that the OS deschedules holds up at most the item it is on.
 *
 * Recurrence: delta_t = softplus(delta_raw_t + bias) (or without softplus), h_t = exp(delta_t A) h_{t-1}
 * + delta_t u_t B_t, y_t = <h_t, C_t> + D u_t, out_t = y_t silu(z_t).
 */

/* The block's width channels at src as LANES values: src itself for a full block, else a copy into scratch
   with zeros in the missing lanes */
static inline const real *NAME(lanes)(const real *src, real *scratch, int64_t width) {
    if (width == LANES) return src;
#pragma omp simd
    for (int c = 0; c < LANES; c++) scratch[c] = c < width ? src[c] : 0;
    return scratch;
}

static inline void NAME(store)(real *dst, const real *src, int64_t width) {
    if (width == LANES) {
#pragma omp simd
        for (int c = 0; c < LANES; c++) dst[c] = src[c];
    } else {
        for (int c = 0; c < width; c++) dst[c] = src[c];
    }
}

static inline real NAME(sigmoid)(real v) { return 1 / (1 + EXP(-v)); }

/* The block's step sizes at one position: raw delta plus bias, through softplus (threshold 20, as mamba-ssm),
 * and, unless slope is NULL, d(step)/d(raw delta). Not inlined: inlined into the time loops, gcc 12 no longer
 * vectorises the softplus loop (3x slower forward). */
static __attribute__((noinline)) void NAME(step_sizes)(const ScanShape *s, const real *delta_t, const real *bias,
                                                       int64_t width, real *step, real *slope) {
    real padded[LANES], v[LANES], e[LANES];
    const real *raw = NAME(lanes)(delta_t, padded, width);
#pragma omp simd
    for (int c = 0; c < LANES; c++) v[c] = raw[c] + bias[c];
    if (!s->delta_softplus) {
#pragma omp simd
        for (int c = 0; c < LANES; c++) step[c] = v[c];
        if (slope) {
#pragma omp simd
            for (int c = 0; c < LANES; c++) slope[c] = 1;
        }
        return;
    }
#pragma omp simd
    for (int c = 0; c < LANES; c++) {
        e[c] = EXP(v[c]);
        const real smooth = LOG1P(e[c]);
        step[c] = v[c] > 20 ? v[c] : smooth;
    }
    if (slope) {
#pragma omp simd
        for (int c = 0; c < LANES; c++) {
            const real sigmoid = e[c] / (1 + e[c]);
            slope[c] = v[c] > 20 ? 1 : sigmoid;
        }
    }
}

/* Per-block constants: the channels' rows of A^T (N x LANES), D and delta_bias (zeros where absent) */
static void NAME(block_constants)(const ScanShape *s, const real *A_t, const real *D, const real *delta_bias,
                                  int64_t c0, int64_t width, real *A_lanes, real *D_lanes, real *bias_lanes) {
    for (int64_t n = 0; n < s->d_state; n++)
        for (int c = 0; c < LANES; c++) A_lanes[n * LANES + c] = c < width ? A_t[n * s->channels + c0 + c] : 0;
    for (int c = 0; c < LANES; c++) D_lanes[c] = bias_lanes[c] = 0;
    if (D) memcpy(D_lanes, D + c0, sizeof(real) * width);
    if (delta_bias) memcpy(bias_lanes, delta_bias + c0, sizeof(real) * width);
}

typedef struct {
    int64_t b, g, c0, width, block;  /* batch, group, first channel, channels, block index over all groups */
} NAME(Block);

static inline NAME(Block) NAME(block_of)(const ScanShape *s, int64_t b, int64_t g, int64_t j) {
    const int64_t per_group = s->channels / s->groups, blocks = (per_group + LANES - 1) / LANES;
    NAME(Block) block = {b, g, g * per_group + j * LANES, per_group - j * LANES, g * blocks + j};
    if (block.width > LANES) block.width = LANES;
    return block;
}

/* Forward. u, delta, z: (b, d, L) with the strides in s; A_t: (N, d); B, C: strides in s; D, delta_bias: (d,)
 * or NULL; z NULL for none. Writes out (b, L, d) contiguous, last_state (b, d, N), and, unless NULL, checkpoints
 * (b, blocks, S, N, LANES): the state before positions 0, T, 2T, ... (S = ceil(L / T), T = s->segment).
 * Returns 0, or 1 if a per-thread buffer could not be allocated. */
int NAME(scan_forward)(const ScanShape *s, const real *u, const real *delta, const real *A_t, const real *B,
                       const real *C, const real *D, const real *z, const real *delta_bias, real *out,
                       real *last_state, real *checkpoints) {
    const int64_t N = s->d_state, L = s->length, d = s->channels, NW = N * LANES;
    const int64_t per_group = d / s->groups, blocks = (per_group + LANES - 1) / LANES;
    const int64_t items = s->batch * s->groups * blocks, segments = (L + s->segment - 1) / s->segment;
    int failed = 0;
#pragma omp parallel num_threads(s->threads)
    {
        real *h = malloc(sizeof(real) * 2 * NW), *A_lanes = h ? h + NW : NULL;
        if (!h) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < items; item++) {
            if (!h) continue;
            const NAME(Block) k = NAME(block_of)(s, item / (s->groups * blocks), item / blocks % s->groups,
                                                 item % blocks);
            real D_lanes[LANES], bias_lanes[LANES];
            NAME(block_constants)(s, A_t, D, delta_bias, k.c0, k.width, A_lanes, D_lanes, bias_lanes);
            real *saved = checkpoints ? checkpoints + (k.b * s->groups * blocks + k.block) * segments * NW : NULL;
            memset(h, 0, sizeof(real) * NW);
            for (int64_t t = 0, next_save = 0; t < L; t++) {
                if (saved && t == next_save) {
                    memcpy(saved + t / s->segment * NW, h, sizeof(real) * NW);
                    next_save += s->segment;
                }
                real dl[LANES], x[LANES], y[LANES], padded_u[LANES], padded_z[LANES];
                NAME(step_sizes)(s, delta + k.b * s->delta_b + t * s->delta_l + k.c0, bias_lanes, k.width, dl, NULL);
                const real *uu = NAME(lanes)(u + k.b * s->u_b + t * s->u_l + k.c0, padded_u, k.width);
#pragma omp simd
                for (int c = 0; c < LANES; c++) {
                    x[c] = dl[c] * uu[c];
                    y[c] = D_lanes[c] * uu[c];
                }
                const real *Bt = B + k.b * s->B_b + k.g * s->B_g + t * s->B_l;
                const real *Ct = C + k.b * s->C_b + k.g * s->C_g + t * s->C_l;
                for (int64_t n = 0; n < N; n++) {
                    real *hn = h + n * LANES;
                    const real *an = A_lanes + n * LANES, bn = Bt[n], cn = Ct[n];
#pragma omp simd
                    for (int c = 0; c < LANES; c++) {
                        hn[c] = EXP(dl[c] * an[c]) * hn[c] + x[c] * bn;
                        y[c] += hn[c] * cn;
                    }
                }
                if (z) {
                    const real *zz = NAME(lanes)(z + k.b * s->z_b + t * s->z_l + k.c0, padded_z, k.width);
#pragma omp simd
                    for (int c = 0; c < LANES; c++) y[c] *= zz[c] * NAME(sigmoid)(zz[c]);
                }
                NAME(store)(out + (k.b * L + t) * d + k.c0, y, k.width);
            }
            for (int c = 0; c < k.width; c++)
                for (int64_t n = 0; n < N; n++) last_state[(k.b * d + k.c0 + c) * N + n] = h[n * LANES + c];
        }
        free(h);
    }
    return failed;
}

/* Per-thread scratch of the backward */
typedef struct {
    real *states;   /* (T + 1, N, LANES): h before the segment, then after each of its positions */
    real *decays;   /* (T, N, LANES): exp(delta_t A) */
    real *steps;    /* (T, LANES): delta_t */
    real *slopes;   /* (T, LANES): d(delta_t)/d(raw delta_t) */
    real *adjoint;  /* (N, LANES): a_{t+1} dL/dh_{t+1}, carried to the left */
    real *dA;       /* (N, LANES) */
    real *A_lanes;  /* (N, LANES) */
} NAME(Scratch);

/* Recompute one segment's step sizes, decays and states from its saved starting state */
static void NAME(recompute_segment)(const ScanShape *s, const NAME(Block) *k, int64_t t0, int64_t count,
                                    const real *start, const real *u, const real *delta, const real *B,
                                    const real *bias_lanes, NAME(Scratch) *w) {
    const int64_t N = s->d_state, NW = N * LANES;
    memcpy(w->states, start, sizeof(real) * NW);
    for (int64_t i = 0; i < count; i++) {
        const int64_t t = t0 + i;
        real x[LANES], padded_u[LANES], *dl = w->steps + i * LANES;
        NAME(step_sizes)(s, delta + k->b * s->delta_b + t * s->delta_l + k->c0, bias_lanes, k->width, dl,
                         w->slopes + i * LANES);
        const real *uu = NAME(lanes)(u + k->b * s->u_b + t * s->u_l + k->c0, padded_u, k->width);
#pragma omp simd
        for (int c = 0; c < LANES; c++) x[c] = dl[c] * uu[c];
        const real *Bt = B + k->b * s->B_b + k->g * s->B_g + t * s->B_l;
        const real *previous = w->states + i * NW;
        real *next = w->states + (i + 1) * NW, *decay = w->decays + i * NW;
        for (int64_t n = 0; n < N; n++) {
            const real *an = w->A_lanes + n * LANES, bn = Bt[n];
#pragma omp simd
            for (int c = 0; c < LANES; c++) {
                const real a = EXP(dl[c] * an[c]);
                decay[n * LANES + c] = a;
                next[n * LANES + c] = a * previous[n * LANES + c] + x[c] * bn;
            }
        }
    }
}

/* Backward. Inputs as in the forward plus checkpoints (from the forward) and grad_out (strides in s, channel
 * stride 1). Writes du, ddelta (w.r.t. the raw delta), dz (if z) as (b, L, d) contiguous; dA_part (b, N, d),
 * dD_part and dbias_part (b, d) (if D / delta_bias), to be summed over b; dB_part and dC_part (b, G, slabs, L, N),
 * to be summed over slabs. Returns 0, or 1 if a per-thread buffer could not be allocated. */
int NAME(scan_backward)(const ScanShape *s, const real *u, const real *delta, const real *A_t, const real *B,
                        const real *C, const real *D, const real *z, const real *delta_bias,
                        const real *checkpoints, const real *grad_out, real *du, real *ddelta, real *dz,
                        real *dA_part, real *dD_part, real *dbias_part, real *dB_part, real *dC_part) {
    const int64_t N = s->d_state, L = s->length, d = s->channels, T = s->segment, NW = N * LANES;
    const int64_t per_group = d / s->groups, blocks = (per_group + LANES - 1) / LANES;
    const int64_t segments = (L + T - 1) / T, slabs = s->slabs, items = s->batch * s->groups * slabs;
    int failed = 0;
#pragma omp parallel num_threads(s->threads)
    {
        real *memory = malloc(sizeof(real) * ((2 * T + 1) * NW + 2 * T * LANES + 3 * NW));
        NAME(Scratch) w = {.states = memory};
        if (memory) {
            w.decays = w.states + (T + 1) * NW;
            w.steps = w.decays + T * NW;
            w.slopes = w.steps + T * LANES;
            w.adjoint = w.slopes + T * LANES;
            w.dA = w.adjoint + NW;
            w.A_lanes = w.dA + NW;
        } else {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < items; item++) {
            if (!memory) continue;
            const int64_t b = item / (s->groups * slabs), g = item / slabs % s->groups, slab = item % slabs;
            real *dB_sum = dB_part + item * L * N, *dC_sum = dC_part + item * L * N;
            memset(dB_sum, 0, sizeof(real) * L * N);
            memset(dC_sum, 0, sizeof(real) * L * N);
            for (int64_t j = slab * blocks / slabs; j < (slab + 1) * blocks / slabs; j++) {
                const NAME(Block) k = NAME(block_of)(s, b, g, j);
                real D_lanes[LANES], bias_lanes[LANES], dD[LANES] = {0}, dbias[LANES] = {0};
                NAME(block_constants)(s, A_t, D, delta_bias, k.c0, k.width, w.A_lanes, D_lanes, bias_lanes);
                const real *saved = checkpoints + (b * s->groups * blocks + k.block) * segments * NW;
                memset(w.adjoint, 0, sizeof(real) * NW);
                memset(w.dA, 0, sizeof(real) * NW);
                for (int64_t segment = segments - 1; segment >= 0; segment--) {
                    const int64_t t0 = segment * T, count = L - t0 < T ? L - t0 : T;
                    NAME(recompute_segment)(s, &k, t0, count, saved + segment * NW, u, delta, B, bias_lanes, &w);
                    for (int64_t i = count - 1; i >= 0; i--) {
                        const int64_t t = t0 + i;
                        const real *dl = w.steps + i * LANES, *h = w.states + (i + 1) * NW;
                        const real *h_previous = w.states + i * NW, *decay = w.decays + i * NW;
                        const real *Bt = B + b * s->B_b + g * s->B_g + t * s->B_l;
                        const real *Ct = C + b * s->C_b + g * s->C_g + t * s->C_l;
                        real padded_u[LANES], padded_g[LANES], padded_z[LANES];
                        const real *uu = NAME(lanes)(u + b * s->u_b + t * s->u_l + k.c0, padded_u, k.width);
                        const real *go = NAME(lanes)(grad_out + b * s->grad_b + t * s->grad_l + k.c0, padded_g,
                                                     k.width);
                        real gy[LANES], x[LANES], d_du[LANES], d_dl[LANES], result[LANES];
                        if (z) {  /* out = y silu(z): needs y_t again */
                            const real *zz = NAME(lanes)(z + b * s->z_b + t * s->z_l + k.c0, padded_z, k.width);
                            real y[LANES];
#pragma omp simd
                            for (int c = 0; c < LANES; c++) y[c] = D_lanes[c] * uu[c];
                            for (int64_t n = 0; n < N; n++) {
#pragma omp simd
                                for (int c = 0; c < LANES; c++) y[c] += h[n * LANES + c] * Ct[n];
                            }
#pragma omp simd
                            for (int c = 0; c < LANES; c++) {
                                const real sig = NAME(sigmoid)(zz[c]);
                                result[c] = go[c] * y[c] * sig * (1 + zz[c] * (1 - sig));
                                gy[c] = go[c] * zz[c] * sig;
                            }
                            NAME(store)(dz + (b * L + t) * d + k.c0, result, k.width);
                        } else {
#pragma omp simd
                            for (int c = 0; c < LANES; c++) gy[c] = go[c];
                        }
#pragma omp simd
                        for (int c = 0; c < LANES; c++) {
                            dD[c] += gy[c] * uu[c];
                            x[c] = dl[c] * uu[c];
                            d_du[c] = d_dl[c] = 0;
                        }
                        for (int64_t n = 0; n < N; n++) {
                            real *gn = w.adjoint + n * LANES, *dAn = w.dA + n * LANES;
                            const real *an = decay + n * LANES, *hp = h_previous + n * LANES, *hn = h + n * LANES;
                            const real *A_n = w.A_lanes + n * LANES, bn = Bt[n], cn = Ct[n];
                            real sum_B = 0, sum_C = 0;
#pragma omp simd reduction(+ : sum_B, sum_C)
                            for (int c = 0; c < LANES; c++) {
                                gn[c] += cn * gy[c];            /* dL/dh_t */
                                sum_C += gy[c] * hn[c];
                                sum_B += gn[c] * x[c];
                                d_du[c] += gn[c] * bn;          /* dL/d(delta_t u_t) */
                                const real dlog = gn[c] * hp[c] * an[c];  /* dL/da_t * a_t */
                                dAn[c] += dlog * dl[c];
                                d_dl[c] += dlog * A_n[c];
                                gn[c] *= an[c];                 /* carried to t - 1 */
                            }
                            dB_sum[t * N + n] += sum_B;
                            dC_sum[t * N + n] += sum_C;
                        }
                        const real *slope = w.slopes + i * LANES;
#pragma omp simd
                        for (int c = 0; c < LANES; c++) {
                            result[c] = gy[c] * D_lanes[c] + d_du[c] * dl[c];
                            d_dl[c] = (d_dl[c] + d_du[c] * uu[c]) * slope[c];
                            dbias[c] += d_dl[c];
                        }
                        NAME(store)(du + (b * L + t) * d + k.c0, result, k.width);
                        NAME(store)(ddelta + (b * L + t) * d + k.c0, d_dl, k.width);
                    }
                }
                for (int64_t n = 0; n < N; n++)
                    NAME(store)(dA_part + (b * N + n) * d + k.c0, w.dA + n * LANES, k.width);
                if (dD_part) NAME(store)(dD_part + b * d + k.c0, dD, k.width);
                if (dbias_part) NAME(store)(dbias_part + b * d + k.c0, dbias, k.width);
            }
        }
        free(memory);
    }
    return failed;
}
