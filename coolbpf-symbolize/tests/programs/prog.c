/* A C test program for the symbolizer's correctness test: static inline helpers that
 * inline into each other (inline chains two and three deep), GCC clones (.constprop,
 * .part, .cold), a switch, a qsort callback. Every function the test checks starts
 * with t_ (and main). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct point {
    int x, y;
};

static inline int t_square(int v) { return v * v; }

static inline int t_dist2(struct point a, struct point b)
{
    return t_square(a.x - b.x) + t_square(a.y - b.y);
}

static inline __attribute__((always_inline)) unsigned t_mix(unsigned h, unsigned v)
{
    h ^= v;
    h *= 16777619u;
    return h;
}

__attribute__((noinline)) unsigned t_hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s)
        h = t_mix(h, (unsigned char)*s++);
    return h;
}

__attribute__((noinline)) int t_closest(const struct point *pts, int n, struct point q)
{
    int best = -1, best_d = 0;
    for (int i = 0; i < n; i++) {
        int d = t_dist2(pts[i], q);
        if (best < 0 || d < best_d) {
            best = i;
            best_d = d;
        }
    }
    return best;
}

static int t_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) void t_sort(int *v, int n) { qsort(v, n, sizeof *v, t_cmp); }

static __attribute__((noinline)) int t_scale(int x, int k)
{
    int r = 0;
    for (int i = 0; i < k; i++)
        r += x * (i + 1);
    return r;
}

static void t_fail(const char *what, int x)
{
    fprintf(stderr, "%s: %d\n", what, x);
    abort();
}

__attribute__((noinline)) int t_checked(int x)
{
    if (__builtin_expect(x > 1000000, 0))
        t_fail("too large", x);
    return t_scale(x, 3) + t_scale(x + 1, 3);
}

__attribute__((noinline)) int t_switch(int op, int a, int b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * t_square(b);
    case 3: return b ? a / b : 0;
    case 4: return (int)t_hash("switch") ^ a;
    case 5: return t_dist2((struct point){a, b}, (struct point){b, a});
    default: return -1;
    }
}

/* A ring buffer and a tokenizer built from small static inline helpers: most of the
 * code of t_ring_run and t_tokens is inlined, up to four calls deep. */
struct ring {
    unsigned head, tail;
    int slots[32];
};

static inline unsigned t_ring_mask(unsigned i) { return i & 31u; }
static inline int t_ring_full(const struct ring *r) { return r->head - r->tail == 32; }
static inline int t_ring_empty(const struct ring *r) { return r->head == r->tail; }

static inline int t_ring_push(struct ring *r, int v)
{
    if (t_ring_full(r))
        return 0;
    r->slots[t_ring_mask(r->head++)] = v;
    return 1;
}

static inline int t_ring_pop(struct ring *r, int *v)
{
    if (t_ring_empty(r))
        return 0;
    *v = r->slots[t_ring_mask(r->tail++)];
    return 1;
}

static inline int t_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int t_smooth(int prev, int v) { return t_clamp((prev * 3 + v) / 4, -1000, 1000); }

__attribute__((noinline)) long t_ring_run(const int *in, int n)
{
    struct ring r = {0};
    long total = 0;
    int prev = 0, v;
    for (int i = 0; i < n; i++) {
        if (!t_ring_push(&r, t_smooth(prev, in[i])) && t_ring_pop(&r, &v))
            total += v;
        prev = in[i];
    }
    while (t_ring_pop(&r, &v))
        total += t_square(v % 100);
    return total;
}

static inline int t_is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }
static inline int t_is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int t_is_alpha(char c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static inline int t_is_word(char c) { return t_is_alpha(c) || t_is_digit(c) || c == '_'; }

static inline const char *t_skip_space(const char *s)
{
    while (t_is_space(*s))
        s++;
    return s;
}

static inline const char *t_scan_word(const char *s, unsigned *h)
{
    while (t_is_word(*s))
        *h = t_mix(*h, (unsigned char)*s++);
    return s;
}

static inline long t_scan_number(const char **s)
{
    long v = 0;
    while (t_is_digit(**s))
        v = v * 10 + (*(*s)++ - '0');
    return v;
}

__attribute__((noinline)) unsigned t_tokens(const char *s, long *numbers)
{
    unsigned h = 2166136261u;
    *numbers = 0;
    for (;;) {
        s = t_skip_space(s);
        if (!*s)
            break;
        if (t_is_digit(*s))
            *numbers += t_scan_number(&s);
        else if (t_is_word(*s))
            s = t_scan_word(s, &h);
        else
            h = t_mix(h, (unsigned char)*s++);
    }
    return h;
}

int main(int argc, char **argv)
{
    struct point pts[16];
    int v[64];
    for (int i = 0; i < 16; i++)
        pts[i] = (struct point){i * argc, 16 - i};
    for (int i = 0; i < 64; i++)
        v[i] = (i * 7919 + argc) % 101;
    t_sort(v, 64);
    unsigned h = t_hash(argc > 1 ? argv[1] : "default");
    int c = t_closest(pts, 16, (struct point){argc, argc});
    long numbers;
    unsigned th = t_tokens(argc > 2 ? argv[2] : "let x1 = 42 + y_2 * 7;", &numbers);
    printf("%u %d %d %d %d %ld %u %ld\n", h, c, v[0], t_checked(argc), t_switch(argc % 6, argc, 3),
           t_ring_run(v, 64), th, numbers);
    return 0;
}
