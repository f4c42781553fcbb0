/* Score-accumulation and top-k kernels for the inverted index.
 *
 * Term-at-a-time over the query's posting lists into a per-thread accumulator, tracking touched documents so
 * that clearing and top-k selection cost O(touched), not O(collection). The GIL is released, so batch search
 * scales over threads. Arrays arrive through the buffer protocol (no numpy headers needed to build). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MODE_SATURATING = 0, MODE_BM25L = 1, MODE_DIRICHLET = 2, MODE_IMPACT = 3 };

typedef struct { float score; uint32_t doc; } Hit;

/* a ranks before b: higher score, or equal score and earlier document (earlier documents win ties). */
static inline int better(Hit a, Hit b) { return a.score > b.score || (a.score == b.score && a.doc < b.doc); }

static int compare_hits(const void *x, const void *y) {
    const Hit a = *(const Hit *)x, b = *(const Hit *)y;
    return better(a, b) ? -1 : (better(b, a) ? 1 : 0);
}

/* Quickselect: afterwards h[0..k-1] hold the k best of h[0..n-1], in no particular order. */
static void select_best(Hit *h, Py_ssize_t n, Py_ssize_t k) {
    Py_ssize_t lo = 0, hi = n - 1, target = k - 1;
    while (hi > lo) {
        const Hit pivot = h[lo + (hi - lo) / 2];
        Py_ssize_t i = lo, j = hi;
        while (i <= j) {
            while (better(h[i], pivot)) i++;
            while (better(pivot, h[j])) j--;
            if (i <= j) { Hit t = h[i]; h[i] = h[j]; h[j] = t; i++; j--; }
        }
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else return;
    }
}

static Hit worst_of(const Hit *h, Py_ssize_t n) {
    Hit w = h[0];
    for (Py_ssize_t i = 1; i < n; i++) if (better(w, h[i])) w = h[i];
    return w;
}

static int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *name, int writable) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected item size %zd, got %zd", name, itemsize, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* One posting list into the accumulator, specialised per scoring mode and tf width so the inner loop has no
 * branches but the touched-document check. Returns the new touched count, or -1 on a corrupt document number. */
typedef Py_ssize_t (*Accumulate)(const uint32_t *, const void *, int64_t, int64_t, float, float, float, float,
                                 const float *, float *, uint8_t *, uint32_t *, Py_ssize_t, uint32_t);

#define DEFINE_ACCUMULATE(NAME, TF_T, SCORE)                                                                    \
    static Py_ssize_t NAME(const uint32_t *pd, const void *tfv, int64_t first, int64_t last, float wf, float cf,  \
                           float k1, float delta, const float *nm, float *a, uint8_t *mk, uint32_t *tc,          \
                           Py_ssize_t n_touched, uint32_t n_docs) {                                             \
        const TF_T *tfs = (const TF_T *)tfv;                                                                    \
        (void)k1; (void)delta; (void)cf;                                                                        \
        for (int64_t p = first; p < last; p++) {                                                                \
            const uint32_t d = pd[p];                                                                           \
            if (d >= n_docs) return -1;                                                                         \
            const float tf = (float)tfs[p];                                                                     \
            const float nd = nm[d];                                                                             \
            float s;                                                                                            \
            SCORE;                                                                                              \
            if (!mk[d]) { mk[d] = 1; tc[n_touched++] = d; }                                                     \
            a[d] += s;                                                                                          \
        }                                                                                                       \
        return n_touched;                                                                                       \
    }

#define SCORE_SAT s = wf * (tf / (tf + nd)) + cf
#define SCORE_BM25L { const float x = tf / nd + delta; s = wf * x / (k1 + x); }
#define SCORE_DIR { const float l = logf(1.0f + tf * cf) + nd; s = l > 0.0f ? wf * l : 0.0f; }
DEFINE_ACCUMULATE(acc_sat_16, uint16_t, SCORE_SAT)
DEFINE_ACCUMULATE(acc_sat_32, uint32_t, SCORE_SAT)
DEFINE_ACCUMULATE(acc_bm25l_16, uint16_t, SCORE_BM25L)
DEFINE_ACCUMULATE(acc_bm25l_32, uint32_t, SCORE_BM25L)
DEFINE_ACCUMULATE(acc_dir_16, uint16_t, SCORE_DIR)
DEFINE_ACCUMULATE(acc_dir_32, uint32_t, SCORE_DIR)
/* Learned-sparse impacts: the stored "tf" is a quantized term weight, the score a plain weighted sum. */
#define SCORE_IMPACT { (void)nd; s = wf * tf; }
DEFINE_ACCUMULATE(acc_impact_16, uint16_t, SCORE_IMPACT)
DEFINE_ACCUMULATE(acc_impact_32, uint32_t, SCORE_IMPACT)

/* search_segment(docs u32, tfs u16|u32, offsets i64[V+1], term_ids i64, weights f64, consts f64, norm f32, live u8|None,
 *                mode, k1, delta, k, acc f32[n], mark u8[n], touched u32[n], out_docs u32[k], out_scores f32[k])
 *  -> number of hits written */
static PyObject *search_segment(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_docs, *o_tfs, *o_starts, *o_ends, *o_w, *o_c, *o_norm, *o_live, *o_acc, *o_mark, *o_touched,
        *o_out_docs, *o_out_scores;
    int mode;
    double k1, delta;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiddnOOOOO", &o_docs, &o_tfs, &o_starts, &o_ends, &o_w, &o_c, &o_norm,
                          &o_live, &mode, &k1, &delta, &k, &o_acc, &o_mark, &o_touched, &o_out_docs, &o_out_scores))
        return NULL;
    Py_buffer docs, tfs, starts, ends, w, c, norm, live, acc, mark, touched, out_docs, out_scores;
    int have_live = o_live != Py_None;
    memset(&live, 0, sizeof live);
    if (get_buf(o_docs, &docs, 4, "docs", 0) < 0) return NULL;
    if (PyObject_GetBuffer(o_tfs, &tfs, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto fail0;
    if (tfs.itemsize != 2 && tfs.itemsize != 4) { PyErr_SetString(PyExc_TypeError, "tfs must be uint16 or uint32"); goto fail1; }
    if (get_buf(o_starts, &starts, 8, "offsets", 0) < 0) goto fail1;
    if (get_buf(o_ends, &ends, 8, "term_ids", 0) < 0) goto fail2;
    if (get_buf(o_w, &w, 8, "weights", 0) < 0) goto fail3;
    if (get_buf(o_c, &c, 8, "consts", 0) < 0) goto fail4;
    if (get_buf(o_norm, &norm, 4, "norm", 0) < 0) goto fail5;
    if (have_live && get_buf(o_live, &live, 1, "live", 0) < 0) goto fail6;
    if (get_buf(o_acc, &acc, 4, "acc", 1) < 0) goto fail7;
    if (get_buf(o_mark, &mark, 1, "mark", 1) < 0) goto fail8;
    if (get_buf(o_touched, &touched, 4, "touched", 1) < 0) goto fail9;
    if (get_buf(o_out_docs, &out_docs, 4, "out_docs", 1) < 0) goto fail10;
    if (get_buf(o_out_scores, &out_scores, 4, "out_scores", 1) < 0) goto fail11;

    Py_ssize_t n_docs = norm.len / 4, n_terms = ends.len / 8, n_post = docs.len / 4, n_vocab = starts.len / 8 - 1;
    if (acc.len / 4 < n_docs || mark.len < n_docs || touched.len / 4 < n_docs || out_docs.len / 4 < k ||
        out_scores.len / 4 < k || w.len / 8 != n_terms || c.len / 8 != n_terms ||
        (have_live && live.len < n_docs) || tfs.len / tfs.itemsize != n_post) {
        PyErr_SetString(PyExc_ValueError, "search_segment: inconsistent array sizes");
        goto fail12;
    }
    const int64_t *off = starts.buf, *tid = ends.buf;
    for (Py_ssize_t t = 0; t < n_terms; t++) {
        if (tid[t] < 0 || tid[t] >= n_vocab || off[tid[t]] < 0 || off[tid[t] + 1] < off[tid[t]] ||
            off[tid[t] + 1] > n_post) {
            PyErr_SetString(PyExc_ValueError, "search_segment: term id or posting range out of bounds");
            goto fail12;
        }
    }
    const uint32_t *pd = docs.buf;
    Py_ssize_t n_hits = 0;
    int corrupt = 0;
    Py_BEGIN_ALLOW_THREADS
    float *a = acc.buf;
    uint8_t *mk = mark.buf;
    uint32_t *tc = touched.buf;
    const float *nm = norm.buf;
    const double *wt = w.buf, *ct = c.buf;
    const uint16_t *tf16 = tfs.itemsize == 2 ? tfs.buf : NULL;
    const uint32_t *tf32 = tfs.itemsize == 4 ? tfs.buf : NULL;
    Py_ssize_t n_touched = 0;
    Accumulate fn = NULL;
    if (mode == MODE_SATURATING) fn = tf16 ? acc_sat_16 : acc_sat_32;
    else if (mode == MODE_BM25L) fn = tf16 ? acc_bm25l_16 : acc_bm25l_32;
    else if (mode == MODE_IMPACT) fn = tf16 ? acc_impact_16 : acc_impact_32;
    else fn = tf16 ? acc_dir_16 : acc_dir_32;
    const void *tfp = tf16 ? (const void *)tf16 : (const void *)tf32;
    for (Py_ssize_t t = 0; t < n_terms && !corrupt; t++) {
        n_touched = fn(pd, tfp, off[tid[t]], off[tid[t] + 1], (float)wt[t], (float)ct[t], (float)k1, (float)delta,
                       nm, a, mk, tc, n_touched, (uint32_t)n_docs);
        if (n_touched < 0) corrupt = 1;
    }
    /* Top k over the touched documents: candidates better than the current k-th best go to a buffer of 2k;
     * when it fills, a quickselect keeps the k best and raises the threshold. Most documents are rejected by
     * one well-predicted comparison. */
    const uint8_t *lv = have_live ? live.buf : NULL;
    Py_ssize_t cap = k < 32 ? 64 : 2 * k;
    Hit *buf = corrupt || k <= 0 ? NULL : (Hit *)PyMem_RawMalloc(sizeof(Hit) * (size_t)cap);
    if (buf) {
        Py_ssize_t n = 0;
        int have_threshold = 0;
        Hit threshold = {0.0f, 0};
        for (Py_ssize_t i = 0; i < n_touched; i++) {
            const uint32_t d = tc[i];
            if (lv && !lv[d]) continue;
            const Hit h = {a[d], d};
            if (have_threshold && !better(h, threshold)) continue;
            buf[n++] = h;
            if (n == cap) {
                select_best(buf, n, k);
                n = k;
                threshold = worst_of(buf, k);
                have_threshold = 1;
            }
        }
        if (n > k) { select_best(buf, n, k); n = k; }
        qsort(buf, (size_t)n, sizeof(Hit), compare_hits);
        uint32_t *od = out_docs.buf;
        float *os = out_scores.buf;
        for (Py_ssize_t m = 0; m < n; m++) { od[m] = buf[m].doc; os[m] = buf[m].score; }
        n_hits = n;
        PyMem_RawFree(buf);
    } else if (!corrupt && k > 0) {
        n_hits = -1;
    }
    for (Py_ssize_t i = 0; i < n_touched; i++) { a[tc[i]] = 0.0f; mk[tc[i]] = 0; }
    Py_END_ALLOW_THREADS
    if (corrupt) { PyErr_SetString(PyExc_ValueError, "search_segment: document number out of range (corrupt index?)"); goto fail12; }
    if (n_hits < 0) { PyErr_NoMemory(); goto fail12; }

    PyBuffer_Release(&out_scores); PyBuffer_Release(&out_docs); PyBuffer_Release(&touched); PyBuffer_Release(&mark);
    PyBuffer_Release(&acc); if (have_live) PyBuffer_Release(&live); PyBuffer_Release(&norm); PyBuffer_Release(&c);
    PyBuffer_Release(&w); PyBuffer_Release(&ends); PyBuffer_Release(&starts); PyBuffer_Release(&tfs);
    PyBuffer_Release(&docs);
    return PyLong_FromSsize_t(n_hits);

fail12: PyBuffer_Release(&out_scores);
fail11: PyBuffer_Release(&out_docs);
fail10: PyBuffer_Release(&touched);
fail9: PyBuffer_Release(&mark);
fail8: PyBuffer_Release(&acc);
fail7: if (have_live) PyBuffer_Release(&live);
fail6: PyBuffer_Release(&norm);
fail5: PyBuffer_Release(&c);
fail4: PyBuffer_Release(&w);
fail3: PyBuffer_Release(&ends);
fail2: PyBuffer_Release(&starts);
fail1: PyBuffer_Release(&tfs);
fail0: PyBuffer_Release(&docs);
    return NULL;
}

/* ---- Hamming top-k over packed bit codes ------------------------------------------------------------------------
 * hamming_topk(query_codes u8 (m, B), codes u8 (n, B), k, allowed u8 (n,) | None, out_ids i64 (m, k),
 *              out_dist i32 (m, k)) -> filled (= min(k, allowed rows), the same for every query)
 *
 * Distances are XOR + popcount over 64-bit words (a zero-padded tail word when B is not a multiple of 8). Queries
 * go in blocks over tiles of documents so a tile of codes is read from memory once per block, not once per query.
 * Each query's distances land in a uint16 scratch row while a histogram over the small range 0..8B is counted;
 * the histogram gives the k-th smallest distance, and one pass over the scratch row places the winners bin by bin
 * (a counting sort): output is ordered by (distance, document), ties to the lower document, without any sort. */
enum { HAM_QUERY_BLOCK = 8, HAM_TILE_ROWS = 2048, HAM_MAX_BYTES = 8191 };

static inline uint64_t load_word(const uint8_t *p) { uint64_t w; memcpy(&w, p, 8); return w; }

static inline uint64_t load_tail(const uint8_t *p, Py_ssize_t len) {
    uint64_t w = 0;
    memcpy(&w, p, (size_t)len);
    return w;
}

/* Distances of nq queries (split into words qw, stride nw1) to rows [r0, r1) into their dist rows (stride n),
 * masked rows set to nbits + 1, counted into each query's histogram (stride nbits + 2). The body is inlined with
 * a constant word count for common widths, so the word loop unrolls. */
static inline __attribute__((always_inline)) void hamming_tile_body(
    const uint64_t *qw, Py_ssize_t nq, Py_ssize_t nw1, const uint8_t *codes, Py_ssize_t nbytes, Py_ssize_t r0,
    Py_ssize_t r1, const uint8_t *lv, uint16_t *dist, uint32_t *hist, Py_ssize_t n, const Py_ssize_t nw,
    const Py_ssize_t rem) {
    const unsigned nbits = (unsigned)(8 * nbytes);
    for (Py_ssize_t j = 0; j < nq; j++) {
        const uint64_t *q = qw + j * nw1;
        uint16_t *out = dist + j * n;
        uint32_t *h = hist + j * (Py_ssize_t)(nbits + 2);
        for (Py_ssize_t r = r0; r < r1; r++) {
            const uint8_t *c = codes + r * nbytes;
            unsigned acc = 0;
            for (Py_ssize_t w = 0; w < nw; w++) acc += (unsigned)__builtin_popcountll(q[w] ^ load_word(c + 8 * w));
            if (rem) acc += (unsigned)__builtin_popcountll(q[nw] ^ load_tail(c + 8 * nw, rem));
            if (lv && !lv[r]) acc = nbits + 1;
            out[r] = (uint16_t)acc;
            h[acc]++;
        }
    }
}

#define HAMMING_TILE_ARGS qw, nq, nw1, codes, nbytes, r0, r1, lv, dist, hist, n
#define DEFINE_HAMMING_TILE(NAME, ATTR)                                                                          \
    ATTR static void NAME(const uint64_t *qw, Py_ssize_t nq, Py_ssize_t nw1, const uint8_t *codes,              \
                          Py_ssize_t nbytes, Py_ssize_t r0, Py_ssize_t r1, const uint8_t *lv, uint16_t *dist,    \
                          uint32_t *hist, Py_ssize_t n) {                                                       \
        switch (nbytes) {                                                                                       \
        case 16: hamming_tile_body(HAMMING_TILE_ARGS, 2, 0); break;                                             \
        case 32: hamming_tile_body(HAMMING_TILE_ARGS, 4, 0); break;                                             \
        case 48: hamming_tile_body(HAMMING_TILE_ARGS, 6, 0); break;                                             \
        case 64: hamming_tile_body(HAMMING_TILE_ARGS, 8, 0); break;                                             \
        case 96: hamming_tile_body(HAMMING_TILE_ARGS, 12, 0); break;                                            \
        case 128: hamming_tile_body(HAMMING_TILE_ARGS, 16, 0); break;                                           \
        default: hamming_tile_body(HAMMING_TILE_ARGS, nbytes / 8, nbytes % 8);                                  \
        }                                                                                                       \
    }

typedef void (*HammingTile)(const uint64_t *, Py_ssize_t, Py_ssize_t, const uint8_t *, Py_ssize_t, Py_ssize_t,
                            Py_ssize_t, const uint8_t *, uint16_t *, uint32_t *, Py_ssize_t);

DEFINE_HAMMING_TILE(hamming_tile_generic, )
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
/* Built without -mpopcnt, __builtin_popcountll is a bit-trick routine; the popcnt instruction is chosen at run time. */
DEFINE_HAMMING_TILE(hamming_tile_popcnt, __attribute__((target("popcnt"))))
static HammingTile pick_hamming_tile(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt") ? hamming_tile_popcnt : hamming_tile_generic;
}
#else
static HammingTile pick_hamming_tile(void) { return hamming_tile_generic; }
#endif

/* The k smallest of one query's distances (masked rows hold nbits + 1, above every real distance) into out,
 * ordered by (distance, row), given the histogram of the distances. */
static void hamming_select(const uint16_t *dist, Py_ssize_t n, const uint32_t *hist, unsigned nbits, Py_ssize_t k,
                           int64_t *out_ids, int32_t *out_dist, Py_ssize_t *pos) {
    /* cut: the distance of the k-th best; below it every row is taken, at it only the first `at_cut` rows.
     * The caller guarantees k <= unmasked rows, so the cut is found at or before nbits. */
    Py_ssize_t below = 0, at_cut = 0;
    unsigned cut = nbits;
    for (unsigned b = 0; b <= nbits; b++) {
        pos[b] = below;
        if (below + (Py_ssize_t)hist[b] >= k) { cut = b; at_cut = k - below; break; }
        below += hist[b];
    }
    Py_ssize_t taken = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        const unsigned d = dist[r];
        if (d > cut) continue;
        if (d == cut) {
            if (taken == at_cut) continue;
            taken++;
        }
        const Py_ssize_t p = pos[d]++;
        out_ids[p] = r;
        out_dist[p] = (int32_t)d;
    }
}

static PyObject *hamming_topk(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_q, *o_codes, *o_allowed, *o_ids, *o_dist;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "OOnOOO", &o_q, &o_codes, &k, &o_allowed, &o_ids, &o_dist)) return NULL;
    Py_buffer qb, cb, ab, ib, db;
    const int have_allowed = o_allowed != Py_None;
    PyObject *result = NULL;
    if (get_buf(o_q, &qb, 1, "query_codes", 0) < 0) return NULL;
    if (get_buf(o_codes, &cb, 1, "codes", 0) < 0) goto rel_q;
    if (have_allowed && get_buf(o_allowed, &ab, 1, "allowed", 0) < 0) goto rel_c;
    if (get_buf(o_ids, &ib, 8, "out_ids", 1) < 0) goto rel_a;
    if (get_buf(o_dist, &db, 4, "out_dist", 1) < 0) goto rel_i;
    if (qb.ndim != 2 || cb.ndim != 2 || qb.shape[1] != cb.shape[1] || ib.ndim != 2 || db.ndim != 2 ||
        ib.shape[0] != qb.shape[0] || db.shape[0] != qb.shape[0] || ib.shape[1] != k || db.shape[1] != k ||
        (have_allowed && (ab.ndim != 1 || ab.shape[0] != cb.shape[0])) || k < 0) {
        PyErr_SetString(PyExc_ValueError, "hamming_topk: inconsistent array shapes");
        goto rel_d;
    }
    const Py_ssize_t m = qb.shape[0], n = cb.shape[0], nbytes = cb.shape[1];
    if (nbytes > HAM_MAX_BYTES) {
        PyErr_Format(PyExc_ValueError, "hamming_topk: at most %d bytes per code, got %zd", HAM_MAX_BYTES, nbytes);
        goto rel_d;
    }
    Py_ssize_t filled = 0;
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    const unsigned nbits = (unsigned)(8 * nbytes);
    const uint8_t *lv = have_allowed ? ab.buf : NULL;
    Py_ssize_t allowed_rows = n;
    if (lv) { allowed_rows = 0; for (Py_ssize_t r = 0; r < n; r++) allowed_rows += lv[r] != 0; }
    filled = k < allowed_rows ? k : allowed_rows;
    const Py_ssize_t nw1 = nbytes / 8 + 1, qblock = m < HAM_QUERY_BLOCK ? m : HAM_QUERY_BLOCK;
    uint16_t *dist = m && k ? PyMem_RawMalloc(sizeof(uint16_t) * (size_t)(qblock * n + 1)) : NULL;
    uint64_t *qw = m && k ? PyMem_RawCalloc((size_t)(qblock * nw1), sizeof(uint64_t)) : NULL;
    uint32_t *hist = m && k ? PyMem_RawMalloc(sizeof(uint32_t) * (size_t)(qblock * (nbits + 2))) : NULL;
    Py_ssize_t *pos = m && k ? PyMem_RawMalloc(sizeof(Py_ssize_t) * (nbits + 2)) : NULL;
    if (m && k && (!dist || !qw || !hist || !pos)) oom = 1;
    const HammingTile tile = pick_hamming_tile();
    const uint8_t *qbytes = qb.buf, *codes = cb.buf;
    for (Py_ssize_t q0 = 0; q0 < m && k && !oom; q0 += qblock) {
        const Py_ssize_t nq = m - q0 < qblock ? m - q0 : qblock;
        for (Py_ssize_t j = 0; j < nq; j++) {
            const uint8_t *src = qbytes + (q0 + j) * nbytes;
            for (Py_ssize_t w = 0; w < nbytes / 8; w++) qw[j * nw1 + w] = load_word(src + 8 * w);
            qw[j * nw1 + nbytes / 8] = nbytes % 8 ? load_tail(src + 8 * (nbytes / 8), nbytes % 8) : 0;
        }
        memset(hist, 0, sizeof(uint32_t) * (size_t)(nq * (nbits + 2)));
        for (Py_ssize_t r0 = 0; r0 < n; r0 += HAM_TILE_ROWS)
            tile(qw, nq, nw1, codes, nbytes, r0, n - r0 < HAM_TILE_ROWS ? n : r0 + HAM_TILE_ROWS, lv, dist, hist, n);
        for (Py_ssize_t j = 0; j < nq; j++) {
            hamming_select(dist + j * n, n, hist + j * (nbits + 2), nbits, filled, (int64_t *)ib.buf + (q0 + j) * k,
                           (int32_t *)db.buf + (q0 + j) * k, pos);
            for (Py_ssize_t p = filled; p < k; p++) {
                ((int64_t *)ib.buf)[(q0 + j) * k + p] = -1;
                ((int32_t *)db.buf)[(q0 + j) * k + p] = -1;
            }
        }
    }
    PyMem_RawFree(dist); PyMem_RawFree(qw); PyMem_RawFree(hist); PyMem_RawFree(pos);
    Py_END_ALLOW_THREADS
    if (oom) PyErr_NoMemory();
    else result = PyLong_FromSsize_t(filled);
rel_d: PyBuffer_Release(&db);
rel_i: PyBuffer_Release(&ib);
rel_a: if (have_allowed) PyBuffer_Release(&ab);
rel_c: PyBuffer_Release(&cb);
rel_q: PyBuffer_Release(&qb);
    return result;
}

static PyMethodDef methods[] = {
    {"search_segment", search_segment, METH_VARARGS, "Accumulate term scores for one segment and return the top k."},
    {"hamming_topk", hamming_topk, METH_VARARGS, "The k nearest packed bit codes to each query by Hamming distance."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "Compiled search kernels.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
