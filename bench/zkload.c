/*
 * zkload: a lean ZooKeeper load generator that speaks the client wire protocol itself.
 *
 * One thread, one epoll loop, N sessions with K requests in flight each. Requests are encoded
 * straight into each connection's write buffer (no per-request allocation); every readable
 * socket is drained, every complete reply handled, and the refills go out with one send()
 * per connection per turn. Per-request latency goes into a 1-microsecond histogram. The
 * generator reports its own CPU (getrusage) so it can be checked against the server's.
 *
 * The bench runner (bench/ab.py) builds this with gcc at run time. Modes:
 *   run       --op getdata|exists|setdata|create|children|mixed|multi --sessions N --inflight K
 *             --warmup S --duration S [--tag T] [--size B] [--keys N]
 *   populate  --prefix /p --count N [--start I] [--sessions N --inflight K]
 *             creates /p/<10 digits> nodes numbered from I
 *   fanout    --watchers W --iterations M [--warmup-iterations M] --path /p
 *   connect   --sessions N   connect all at once; prints CONNECTED, waits for a line on stdin
 *   fsync     --dir D --count N   the disk's raw pwrite+fdatasync latency (no server)
 *   failover  --path /p [--size B]   one session writing setData, one in flight, through the
 *             first port; prints WRITING once it writes steadily, then waits for a line
 *             "killed" on stdin (the runner killed the leader). Whenever its connection drops
 *             it resumes the session (id, password, last zxid seen) on the next port, every
 *             --retry-ms; it ends at the first write sent after the notice and acknowledged,
 *             and reports that moment (CLOCK_MONOTONIC, as the runner's time.monotonic_ns).
 * --port takes a comma-separated list: session i connects to port i mod n (an ensemble's
 * members, one after another).
 * Phase markers ("MEASURE_START", "MEASURE_END", "CONNECTED") go to stdout as they happen, so
 * the runner can sample the server's /proc counters at the same moments; the last line is
 * "RESULT {json}".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { OP_CREATE = 1, OP_DELETE = 2, OP_EXISTS = 3, OP_GETDATA = 4, OP_SETDATA = 5,
       OP_GETCHILDREN = 8, OP_MULTI = 14, OP_CLOSE = -11 };
enum { W_GETDATA, W_EXISTS, W_SETDATA, W_CREATE, W_CHILDREN, W_MIXED, W_MULTI, W_POPULATE };
enum { S_CONNECTING, S_HANDSHAKE, S_READY, S_CLOSING, S_DONE, S_FAILED };

/* Latency histogram: 1 us buckets below 65.5 ms, then 64 us buckets up to ~67 s. */
#define HIST_FINE 65536u
#define HIST_COARSE_SHIFT 6
#define HIST_US (HIST_FINE + (1u << 20))

typedef struct {
    int fd, state, idx;
    int32_t next_xid, expect_xid;
    int inflight;
    uint64_t counter;       /* per-session request counter (paths, mixed pattern) */
    uint64_t *sent_ns;      /* ring, indexed by xid % ring */
    uint32_t ring;
    char *wbuf; size_t wlen, wcap, woff;
    char *rbuf; size_t rlen, rcap;
    uint64_t connect_ns, ready_ns, notified_ns;
    int want_out;
    int64_t session_id, last_zxid;  /* resumed with these after a lost connection */
    char passwd[16];
} sess_t;

#define MAX_PORTS 16

static struct {
    const char *host; int ports[MAX_PORTS]; int nports; int mode_w; const char *mode;
    int sessions, inflight, keys, size, count, watchers, iterations, warmup_iterations;
    double warmup, duration;
    const char *tag, *prefix, *path, *dir;
    int retry_ms;
} cfg = { "127.0.0.1", {2181}, 1, W_GETDATA, "run", 8, 16, 100, 100, 1000, 200, 50, 5,
          2.0, 5.0, "t", "/bench/pop", "/bench/w", ".", 5 };

static int ep;
static int fail_eof, fail_err, fail_refused, last_errno;

/* A session broke: count why (eof = the server closed it, err = a socket error, refused =
 * the server answered the handshake with a zero timeout). */
static void drop(sess_t *s) {
    if (s->fd >= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL); close(s->fd); s->fd = -1; }
}

static void fail(sess_t *s, int why) {
    s->state = S_FAILED;
    drop(s);
    if (why == 0) fail_eof++; else if (why < 0) fail_refused++; else { fail_err++; last_errno = why; }
}
static uint32_t *hist;
static uint64_t hist_n, hist_over;
static uint64_t ops_done, errors, xid_mismatch, populate_sent;
static int measuring;
static char payload[1 << 16];

static uint64_t now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) { perror(what); exit(2); }

static uint32_t hist_index(uint64_t us) {
    if (us < HIST_FINE) return (uint32_t)us;
    uint64_t i = HIST_FINE + ((us - HIST_FINE) >> HIST_COARSE_SHIFT);
    if (i >= HIST_US) { hist_over++; i = HIST_US - 1; }
    return (uint32_t)i;
}

static double hist_value(uint32_t i) {
    return i < HIST_FINE ? i : HIST_FINE + ((double)(i - HIST_FINE) * (1 << HIST_COARSE_SHIFT));
}

static void hist_add(uint64_t ns) {
    hist[hist_index(ns / 1000)]++; hist_n++;
}

static double hist_pct(double p) {
    if (!hist_n) return 0;
    uint64_t want = (uint64_t)(p * (double)hist_n), seen = 0;
    if (want >= hist_n) want = hist_n - 1;
    for (uint32_t i = 0; i < HIST_US; i++) { seen += hist[i]; if (seen > want) return hist_value(i); }
    return hist_value(HIST_US - 1);
}

static double hist_mean(void) {
    if (!hist_n) return 0;
    double s = 0; for (uint32_t i = 0; i < HIST_US; i++) s += (double)hist[i] * hist_value(i);
    return s / hist_n;
}

/* ------------------------------------------------------------------ encoding */

static void reserve(sess_t *s, size_t n) {
    if (s->wlen + n <= s->wcap) return;
    while (s->wlen + n > s->wcap) s->wcap *= 2;
    s->wbuf = realloc(s->wbuf, s->wcap);
    if (!s->wbuf) die("realloc");
}
static inline void put_int(sess_t *s, int32_t v) { uint32_t b = htonl((uint32_t)v); memcpy(s->wbuf + s->wlen, &b, 4); s->wlen += 4; }
static inline void put_long(sess_t *s, int64_t v) { put_int(s, (int32_t)((uint64_t)v >> 32)); put_int(s, (int32_t)(v & 0xffffffff)); }
static inline void put_bytes(sess_t *s, const void *p, int n) { put_int(s, n); memcpy(s->wbuf + s->wlen, p, n); s->wlen += n; }
static inline void put_str(sess_t *s, const char *p) { put_bytes(s, p, (int)strlen(p)); }
static inline void put_bool(sess_t *s, int v) { s->wbuf[s->wlen++] = v ? 1 : 0; }
static void put_open_acl(sess_t *s) { put_int(s, 1); put_int(s, 31); put_str(s, "world"); put_str(s, "anyone"); }

static void key_path(char *out, size_t n, sess_t *s) {
    snprintf(out, n, "/bench/d/k%02d", (int)((s->counter * 7 + s->idx) % (uint64_t)cfg.keys));
}

/* Append one request; its send time goes into the ring slot of its xid. */
static void send_request(sess_t *s, int w) {
    char path[256];
    reserve(s, 512 + cfg.size * 2);
    size_t start = s->wlen;
    s->wlen += 4;
    int32_t xid = s->next_xid++;
    s->counter++;
    if (w == W_MIXED) w = (s->counter % 10 == 0) ? W_SETDATA : W_GETDATA;
    switch (w) {
    case W_GETDATA: case W_EXISTS:
        put_int(s, xid); put_int(s, w == W_GETDATA ? OP_GETDATA : OP_EXISTS);
        key_path(path, sizeof path, s); put_str(s, path); put_bool(s, 0);
        break;
    case W_SETDATA:
        put_int(s, xid); put_int(s, OP_SETDATA);
        key_path(path, sizeof path, s); put_str(s, path); put_bytes(s, payload, cfg.size); put_int(s, -1);
        break;
    case W_CHILDREN:
        put_int(s, xid); put_int(s, OP_GETCHILDREN); put_str(s, "/bench/kids"); put_bool(s, 0);
        break;
    case W_CREATE:
        put_int(s, xid); put_int(s, OP_CREATE);
        snprintf(path, sizeof path, "/bench/c/%s-%d-%llu", cfg.tag, s->idx, (unsigned long long)s->counter);
        put_str(s, path); put_bytes(s, payload, cfg.size); put_open_acl(s); put_int(s, 0);
        break;
    case W_POPULATE:
        put_int(s, xid); put_int(s, OP_CREATE);
        snprintf(path, sizeof path, "%s/%010llu", cfg.prefix, (unsigned long long)populate_sent++);
        put_str(s, path); put_bytes(s, payload, cfg.size); put_open_acl(s); put_int(s, 0);
        break;
    case W_MULTI:
        put_int(s, xid); put_int(s, OP_MULTI);
        put_int(s, OP_CREATE); put_bool(s, 0); put_int(s, -1);
        snprintf(path, sizeof path, "/bench/m/%s-%d-%llu", cfg.tag, s->idx, (unsigned long long)s->counter);
        put_str(s, path); put_bytes(s, payload, cfg.size); put_open_acl(s); put_int(s, 0);
        put_int(s, OP_SETDATA); put_bool(s, 0); put_int(s, -1);
        key_path(path, sizeof path, s); put_str(s, path); put_bytes(s, payload, cfg.size); put_int(s, -1);
        put_int(s, -1); put_bool(s, 1); put_int(s, -1);
        break;
    }
    uint32_t len = htonl((uint32_t)(s->wlen - start - 4));
    memcpy(s->wbuf + start, &len, 4);
    s->sent_ns[(uint32_t)xid % s->ring] = now_ns();
    s->inflight++;
}

static void send_simple(sess_t *s, int op, const char *path, int watch_or_none) {
    reserve(s, 512 + cfg.size);
    size_t start = s->wlen;
    s->wlen += 4;
    int32_t xid = s->next_xid++;
    put_int(s, xid); put_int(s, op);
    if (op == OP_GETDATA || op == OP_EXISTS) { put_str(s, path); put_bool(s, watch_or_none); }
    else if (op == OP_SETDATA) { put_str(s, path); put_bytes(s, payload, cfg.size); put_int(s, -1); }
    uint32_t len = htonl((uint32_t)(s->wlen - start - 4));
    memcpy(s->wbuf + start, &len, 4);
    s->sent_ns[(uint32_t)xid % s->ring] = now_ns();
    s->inflight++;
}

static void send_connect(sess_t *s) {
    reserve(s, 64);
    put_int(s, 4 + 8 + 4 + 8 + 4 + 16 + 1);
    put_int(s, 0); put_long(s, s->last_zxid); put_int(s, 30000); put_long(s, s->session_id);
    put_bytes(s, s->passwd, 16); put_bool(s, 0);
}

/* ------------------------------------------------------------------ I/O */

static void set_events(sess_t *s, int out) {
    if (out == s->want_out) return;
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = s };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) < 0) die("epoll_ctl mod");
    s->want_out = out;
}

static void flush(sess_t *s) {
    if (s->fd < 0) { s->woff = s->wlen = 0; return; }
    while (s->woff < s->wlen) {
        ssize_t n = send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) { set_events(s, 1); return; }
            fail(s, errno); return;
        }
        s->woff += n;
    }
    s->woff = s->wlen = 0;
    set_events(s, 0);
}

/* Open the session's connection to a port (its buffers start empty). */
static void sess_dial(sess_t *s, int port) {
    s->wlen = s->woff = s->rlen = 0;
    s->inflight = 0;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) die("socket");
    int one = 1; setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, cfg.host, &a.sin_addr);
    s->connect_ns = now_ns();
    if (connect(s->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
    s->state = S_CONNECTING;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = s };
    s->want_out = 1;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl add");
}

static sess_t *new_session(int idx, int ring) {
    sess_t *s = calloc(1, sizeof *s);
    s->idx = idx; s->next_xid = 1; s->expect_xid = 1; s->ring = ring < 1 ? 1 : ring;
    s->sent_ns = calloc(s->ring, sizeof(uint64_t));
    s->wcap = 4096; s->wbuf = malloc(s->wcap);
    s->rcap = 65536; s->rbuf = malloc(s->rcap);
    sess_dial(s, cfg.ports[idx % cfg.nports]);
    return s;
}

/* Handlers the modes plug in: called per complete frame after the handshake. */
typedef void (*reply_fn)(sess_t *s, int32_t xid, int32_t err, const char *body, uint32_t blen, uint64_t t);
static reply_fn on_reply;
static void (*on_ready)(sess_t *s);
static void (*on_stdin)(void);  /* stdin is in the epoll set (data.ptr NULL) in failover mode */

static uint32_t rd32(const char *p) { uint32_t v; memcpy(&v, p, 4); return ntohl(v); }
static int64_t rd64(const char *p) { return (int64_t)(((uint64_t)rd32(p) << 32) | rd32(p + 4)); }

static void handle_readable(sess_t *s) {
    for (;;) {
        if (s->rcap - s->rlen < 16384) { s->rcap *= 2; s->rbuf = realloc(s->rbuf, s->rcap); }
        ssize_t n = recv(s->fd, s->rbuf + s->rlen, s->rcap - s->rlen, 0);
        if (n == 0) { if (s->state == S_CLOSING || s->state == S_DONE) { s->state = S_DONE; drop(s); } else fail(s, 0); break; }
        if (n < 0) { if (errno != EAGAIN) fail(s, errno); break; }
        s->rlen += n;
        if ((size_t)n < s->rcap - s->rlen + n) break; /* short read: the socket is drained */
    }
    uint64_t t = now_ns();
    size_t pos = 0;
    while (s->rlen - pos >= 4) {
        uint32_t len = rd32(s->rbuf + pos);
        if (s->rlen - pos - 4 < len) break;
        const char *f = s->rbuf + pos + 4;
        pos += 4 + len;
        if (s->state == S_HANDSHAKE) {
            /* ConnectResponse: protocolVersion, timeOut, sessionId, passwd (a 16-byte buffer) */
            int32_t timeout = len >= 16 ? (int32_t)rd32(f + 4) : 0;
            int64_t id = len >= 16 ? rd64(f + 8) : 0;
            if (timeout <= 0 || (s->session_id && id != s->session_id)) { fail(s, -1); continue; }
            s->session_id = id;
            if (len >= 36 && rd32(f + 16) == 16) memcpy(s->passwd, f + 20, 16);
            s->state = S_READY; s->ready_ns = t;
            if (on_ready) on_ready(s);
            continue;
        }
        if (len < 16) { fail(s, -1); continue; }
        int32_t xid = (int32_t)rd32(f), err = (int32_t)rd32(f + 12);
        int64_t zxid = rd64(f + 4);
        if (zxid > s->last_zxid) s->last_zxid = zxid;
        if (xid == -2) continue; /* ping */
        on_reply(s, xid, err, f + 16, len - 16, t);
    }
    if (pos) { memmove(s->rbuf, s->rbuf + pos, s->rlen - pos); s->rlen -= pos; }
}

static void handle_event(sess_t *s, uint32_t events) {
    if (s->state == S_CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int e = 0; socklen_t l = sizeof e;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &l);
        if (e) { fail(s, e); return; }
        s->state = S_HANDSHAKE;
        send_connect(s);
        flush(s);
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) handle_readable(s);
    if (s->fd < 0) return;
    if (s->state != S_FAILED && (s->wlen > s->woff)) flush(s);
    else if ((events & EPOLLOUT) && s->wlen == 0) set_events(s, 0);
}

static int poll_once(int timeout_ms) {
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr) handle_event(evs[i].data.ptr, evs[i].events);
        else if (on_stdin) on_stdin();
    }
    return n;
}

static sess_t **sess;
static int nsess;

static int count_state(int st) { int c = 0; for (int i = 0; i < nsess; i++) c += sess[i]->state == st; return c; }

static int wait_all_ready(double timeout_s) {
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
    while (now_ns() < deadline) {
        int ready = 0, failed = 0;
        for (int i = 0; i < nsess; i++) { ready += sess[i]->state >= S_READY && sess[i]->state != S_FAILED; failed += sess[i]->state == S_FAILED; }
        if (ready + failed == nsess) return failed;
        poll_once(10);
    }
    return -1;
}

static void close_all(double timeout_s) {
    /* closeSession on each ready session, so no session lingers on the server until expiry. */
    for (int i = 0; i < nsess; i++) {
        sess_t *s = sess[i];
        if (s->state != S_READY) continue;
        s->state = S_CLOSING;
        reserve(s, 16);
        put_int(s, 8); put_int(s, s->next_xid++); put_int(s, OP_CLOSE);
        flush(s);
    }
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
    while (count_state(S_CLOSING) && now_ns() < deadline) poll_once(10);
    for (int i = 0; i < nsess; i++) drop(sess[i]);
}

static void result_common(FILE *f) {
    fprintf(f, "\"p50_us\": %.0f, \"p90_us\": %.0f, \"p99_us\": %.0f, \"p999_us\": %.0f, \"max_us\": %.0f, "
            "\"mean_us\": %.1f, \"samples\": %llu, \"errors\": %llu, \"xid_mismatch\": %llu, "
            "\"fail_eof\": %d, \"fail_err\": %d, \"fail_refused\": %d, \"last_errno\": \"%s\"",
            hist_pct(0.5), hist_pct(0.9), hist_pct(0.99), hist_pct(0.999), hist_pct(1.0), hist_mean(),
            (unsigned long long)hist_n, (unsigned long long)errors, (unsigned long long)xid_mismatch,
            fail_eof, fail_err, fail_refused, last_errno ? strerror(last_errno) : "");
}

/* ------------------------------------------------------------------ run / populate */

static uint64_t populate_target, populate_done;

static void run_reply(sess_t *s, int32_t xid, int32_t err, const char *body, uint32_t blen, uint64_t t) {
    (void)body; (void)blen;
    if (s->state == S_CLOSING) { s->state = S_DONE; return; }
    if (xid != s->expect_xid) xid_mismatch++;
    s->expect_xid = xid + 1;
    s->inflight--;
    if (err) errors++;
    if (measuring) { hist_add(t - s->sent_ns[(uint32_t)xid % s->ring]); ops_done++; }
    if (cfg.mode_w == W_POPULATE) {
        populate_done++;
        if (populate_sent < populate_target) send_request(s, W_POPULATE);
        return;
    }
    if (measuring >= 0) send_request(s, cfg.mode_w);
}

static void run_ready(sess_t *s) {
    for (int k = 0; k < cfg.inflight; k++) {
        if (cfg.mode_w == W_POPULATE && populate_sent >= populate_target) break;
        send_request(s, cfg.mode_w);
    }
}

static int mode_run(void) {
    nsess = cfg.sessions;
    sess = calloc(nsess, sizeof *sess);
    on_reply = run_reply; on_ready = NULL;
    for (int i = 0; i < nsess; i++) sess[i] = new_session(i, cfg.inflight);
    int failed = wait_all_ready(30);
    if (failed) { fprintf(stderr, "zkload: %d sessions failed to connect\n", failed); return 2; }
    on_ready = run_ready;
    if (cfg.mode_w == W_POPULATE) {
        populate_target = populate_sent + cfg.count;
        measuring = 1;
        uint64_t t0 = now_ns(); double c0 = cpu_s();
        printf("MEASURE_START\n"); fflush(stdout);
        for (int i = 0; i < nsess; i++) { run_ready(sess[i]); flush(sess[i]); }
        while (populate_done < (uint64_t)cfg.count) {
            poll_once(100);
            if (count_state(S_FAILED)) { fprintf(stderr, "zkload: a session failed while populating\n"); return 2; }
        }
        double el = (now_ns() - t0) / 1e9, cpu = cpu_s() - c0;
        printf("MEASURE_END\n");
        close_all(5);
        printf("RESULT {\"ops\": %llu, \"seconds\": %.6f, \"ops_per_s\": %.1f, \"gen_cpu_s\": %.4f, ",
               (unsigned long long)ops_done, el, ops_done / el, cpu);
        result_common(stdout); printf("}\n");
        return errors ? 1 : 0;
    }
    for (int i = 0; i < nsess; i++) { run_ready(sess[i]); flush(sess[i]); }
    uint64_t t0 = now_ns();
    uint64_t t_measure = t0 + (uint64_t)(cfg.warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(cfg.duration * 1e9);
    double c0 = 0; uint64_t m0 = 0;
    measuring = 0;
    for (;;) {
        poll_once(5);
        uint64_t t = now_ns();
        if (!measuring && t >= t_measure) {
            memset(hist, 0, HIST_US * sizeof *hist); hist_n = hist_over = 0; ops_done = 0; errors = 0;
            measuring = 1; m0 = t; c0 = cpu_s();
            printf("MEASURE_START\n"); fflush(stdout);
        }
        if (measuring && t >= t_end) break;
        if (count_state(S_FAILED)) { fprintf(stderr, "zkload: a session failed\n"); return 2; }
    }
    double el = (now_ns() - m0) / 1e9, cpu = cpu_s() - c0;
    printf("MEASURE_END\n"); fflush(stdout);
    measuring = -1; /* replies still in flight: no refills, no samples */
    uint64_t drain = now_ns() + 5000000000ull;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < nsess; i++) busy += sess[i]->inflight > 0 && sess[i]->state == S_READY;
        if (!busy || now_ns() > drain) break;
        poll_once(10);
    }
    close_all(5);
    printf("RESULT {\"ops\": %llu, \"seconds\": %.6f, \"ops_per_s\": %.1f, \"gen_cpu_s\": %.4f, ",
           (unsigned long long)ops_done, el, ops_done / el, cpu);
    result_common(stdout); printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------ fanout */

static int fan_armed, fan_notified, fan_writer_done;
static uint64_t fan_t0, fan_last;

static void fan_reply(sess_t *s, int32_t xid, int32_t err, const char *body, uint32_t blen, uint64_t t) {
    (void)body; (void)blen;
    if (s->state == S_CLOSING) { s->state = S_DONE; return; }
    if (xid == -1) { fan_notified++; s->notified_ns = t; if (t > fan_last) fan_last = t; return; }
    s->inflight--;
    if (err) errors++;
    if (s->idx == nsess - 1) fan_writer_done = 1; else fan_armed++;
}

static int mode_fanout(void) {
    nsess = cfg.watchers + 1; /* the last session is the writer */
    sess = calloc(nsess, sizeof *sess);
    on_reply = fan_reply; on_ready = NULL;
    for (int i = 0; i < nsess; i++) sess[i] = new_session(i, 4);
    int failed = wait_all_ready(30);
    if (failed) { fprintf(stderr, "zkload: %d sessions failed to connect\n", failed); return 2; }
    int total = cfg.warmup_iterations + cfg.iterations;
    double c0 = 0; uint64_t m0 = 0; uint64_t per_notify_sum = 0;
    for (int it = 0; it < total; it++) {
        if (it == cfg.warmup_iterations) { measuring = 1; c0 = cpu_s(); m0 = now_ns(); printf("MEASURE_START\n"); fflush(stdout); }
        fan_armed = fan_notified = fan_writer_done = 0;
        for (int i = 0; i < nsess - 1; i++) { send_simple(sess[i], OP_GETDATA, cfg.path, 1); flush(sess[i]); }
        while (fan_armed < nsess - 1) { poll_once(100); if (count_state(S_FAILED)) return 2; }
        sess_t *w = sess[nsess - 1];
        fan_last = 0;
        fan_t0 = now_ns();
        send_simple(w, OP_SETDATA, cfg.path, 0); flush(w);
        uint64_t deadline = fan_t0 + 10000000000ull;
        while ((fan_notified < nsess - 1 || !fan_writer_done) && now_ns() < deadline) poll_once(100);
        if (fan_notified < nsess - 1) { fprintf(stderr, "zkload: only %d of %d watchers notified\n", fan_notified, nsess - 1); return 2; }
        if (measuring) {
            hist_add(fan_last - fan_t0);
            for (int i = 0; i < nsess - 1; i++) per_notify_sum += (sess[i]->notified_ns - fan_t0) / 1000;
        }
    }
    double el = (now_ns() - m0) / 1e9, cpu = cpu_s() - c0;
    printf("MEASURE_END\n"); fflush(stdout);
    close_all(5);
    printf("RESULT {\"iterations\": %d, \"watchers\": %d, \"seconds\": %.6f, \"gen_cpu_s\": %.4f, "
           "\"mean_notify_us\": %.1f, ", cfg.iterations, nsess - 1, el, cpu,
           (double)per_notify_sum / ((double)cfg.iterations * (nsess - 1)));
    result_common(stdout); printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------ connect storm */

static void connect_ready(sess_t *s) { hist_add(s->ready_ns - s->connect_ns); }
static void connect_reply(sess_t *s, int32_t xid, int32_t err, const char *body, uint32_t blen, uint64_t t) {
    (void)xid; (void)err; (void)body; (void)blen; (void)t;
    if (s->state == S_CLOSING) s->state = S_DONE;
}

static int mode_connect(void) {
    nsess = cfg.sessions;
    sess = calloc(nsess, sizeof *sess);
    on_reply = connect_reply; on_ready = connect_ready;
    double c0 = cpu_s();
    uint64_t t0 = now_ns();
    printf("MEASURE_START\n"); fflush(stdout);
    for (int i = 0; i < nsess; i++) sess[i] = new_session(i, 2);
    int failed = wait_all_ready(60);
    uint64_t last = 0;
    for (int i = 0; i < nsess; i++) if (sess[i]->state == S_READY && sess[i]->ready_ns > last) last = sess[i]->ready_ns;
    double el = (last - t0) / 1e9, cpu = cpu_s() - c0;
    printf("CONNECTED\n"); fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) { /* the runner closed our stdin: just go on */ }
    close_all(20);
    printf("RESULT {\"sessions\": %d, \"failed\": %d, \"seconds\": %.6f, \"sessions_per_s\": %.1f, "
           "\"gen_cpu_s\": %.4f, ", nsess, failed < 0 ? nsess : failed, el, (nsess - (failed < 0 ? 0 : failed)) / el, cpu);
    result_common(stdout); printf("}\n");
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------------ failover */

static int fo_killed, fo_done, fo_writing, fo_stdin_eof;
static int32_t fo_first_xid;  /* the first request sent after the kill notice */
static uint64_t fo_acked, fo_kill_seen_ns, fo_drop_ns, fo_ack_ns, fo_attempts;
static char fo_line[64];
static size_t fo_line_len;

static void fo_send(sess_t *s) { send_simple(s, OP_SETDATA, cfg.path, 0); flush(s); }

static void fo_reply(sess_t *s, int32_t xid, int32_t err, const char *body, uint32_t blen, uint64_t t) {
    (void)body; (void)blen;
    if (xid == -1) return; /* a watch event */
    s->inflight--;
    if (err) errors++;
    else {
        fo_acked++;
        if (fo_killed && xid >= fo_first_xid) { fo_done = 1; fo_ack_ns = t; return; }
    }
    if (!fo_writing && fo_acked >= 50) { fo_writing = 1; printf("WRITING\n"); fflush(stdout); }
    fo_send(s);
}

static void fo_stdin(void) {
    ssize_t n = read(0, fo_line + fo_line_len, sizeof fo_line - 1 - fo_line_len);
    if (n <= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL); fo_stdin_eof = 1; return; }
    fo_line_len += n;
    fo_line[fo_line_len] = 0;
    if (!fo_killed && strstr(fo_line, "killed")) {
        fo_killed = 1; fo_kill_seen_ns = now_ns(); fo_first_xid = sess[0]->next_xid;
    }
    if (fo_line_len >= sizeof fo_line - 1) fo_line_len = 0;
}

static int mode_failover(void) {
    nsess = 1;
    sess = calloc(1, sizeof *sess);
    on_reply = fo_reply; on_ready = NULL;
    sess_t *s = sess[0] = new_session(0, 4);
    if (wait_all_ready(30)) { fprintf(stderr, "zkload: the session failed to connect\n"); return 2; }
    on_ready = fo_send;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) die("epoll_ctl stdin");
    on_stdin = fo_stdin;
    double c0 = cpu_s();
    fo_send(s);
    uint64_t deadline = now_ns() + 120000000000ull, next_dial = 0;
    while (!fo_done) {
        poll_once(1);
        uint64_t t = now_ns();
        if (t > deadline || (fo_stdin_eof && !fo_killed)) {
            fprintf(stderr, "zkload: %s\n", fo_killed ? "no write acknowledged within 120 s" : "stdin closed");
            return 2;
        }
        if (fail_refused) { fprintf(stderr, "zkload: the session expired\n"); return 2; }
        if (s->state != S_FAILED) continue;
        if (!fo_drop_ns) fo_drop_ns = t;
        if (t >= next_dial) {  /* resume the session on the next member, first the same one */
            sess_dial(s, cfg.ports[fo_attempts++ % cfg.nports]);
            next_dial = t + (uint64_t)cfg.retry_ms * 1000000ull;
        }
    }
    double cpu = cpu_s() - c0;
    close_all(5);
    printf("RESULT {\"ack_ns\": %llu, \"kill_seen_ns\": %llu, \"drop_ns\": %llu, \"attempts\": %llu, "
           "\"acked\": %llu, \"gen_cpu_s\": %.4f, ", (unsigned long long)fo_ack_ns,
           (unsigned long long)fo_kill_seen_ns, (unsigned long long)fo_drop_ns, (unsigned long long)fo_attempts,
           (unsigned long long)fo_acked, cpu);
    result_common(stdout); printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------ raw fsync floor */

static int mode_fsync(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/zkload-fsync.%d", cfg.dir, getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open");
    /* As the txn logs: a preallocated file, appended to and fdatasync'ed entry by entry. */
    if (posix_fallocate(fd, 0, 64 << 20)) die("posix_fallocate");
    fsync(fd);
    for (int i = 0; i < cfg.count + 50; i++) {
        uint64_t t = now_ns();
        if (pwrite(fd, payload, 128, (off_t)i * 128) != 128) die("pwrite");
        if (fdatasync(fd)) die("fdatasync");
        if (i >= 50) hist_add(now_ns() - t);
    }
    close(fd); unlink(path);
    printf("RESULT {\"count\": %d, ", cfg.count);
    result_common(stdout); printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
    fprintf(stderr, "usage: zkload MODE [--host H] [--port P] [--op OP] [--sessions N] [--inflight K] "
                    "[--warmup S] [--duration S] [--tag T] [--size B] [--keys N] [--prefix P] [--count N] "
                    "[--start I] [--watchers W] [--iterations M] [--warmup-iterations M] [--path P] [--dir D] "
                    "[--retry-ms MS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    cfg.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        i++;
        if (!strcmp(k, "--host")) cfg.host = v;
        else if (!strcmp(k, "--port")) {
            cfg.nports = 0;
            for (const char *p = v; *p && cfg.nports < MAX_PORTS; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
                cfg.ports[cfg.nports++] = atoi(p);
            if (!cfg.nports) usage();
        }
        else if (!strcmp(k, "--retry-ms")) cfg.retry_ms = atoi(v);
        else if (!strcmp(k, "--sessions")) cfg.sessions = atoi(v);
        else if (!strcmp(k, "--inflight")) cfg.inflight = atoi(v);
        else if (!strcmp(k, "--warmup")) cfg.warmup = atof(v);
        else if (!strcmp(k, "--duration")) cfg.duration = atof(v);
        else if (!strcmp(k, "--tag")) cfg.tag = v;
        else if (!strcmp(k, "--size")) cfg.size = atoi(v);
        else if (!strcmp(k, "--keys")) cfg.keys = atoi(v);
        else if (!strcmp(k, "--prefix")) cfg.prefix = v;
        else if (!strcmp(k, "--count")) cfg.count = atoi(v);
        else if (!strcmp(k, "--start")) populate_sent = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--watchers")) cfg.watchers = atoi(v);
        else if (!strcmp(k, "--iterations")) cfg.iterations = atoi(v);
        else if (!strcmp(k, "--warmup-iterations")) cfg.warmup_iterations = atoi(v);
        else if (!strcmp(k, "--path")) cfg.path = v;
        else if (!strcmp(k, "--dir")) cfg.dir = v;
        else if (!strcmp(k, "--op")) {
            const char *ops[] = { "getdata", "exists", "setdata", "create", "children", "mixed", "multi" };
            cfg.mode_w = -1;
            for (int j = 0; j < 7; j++) if (!strcmp(v, ops[j])) cfg.mode_w = j;
            if (cfg.mode_w < 0) usage();
        } else usage();
    }
    if (cfg.size < 0 || cfg.size > (int)sizeof payload || cfg.keys < 1) usage();
    memset(payload, 'x', sizeof payload);
    hist = calloc(HIST_US, sizeof *hist);
    ep = epoll_create1(0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(cfg.mode, "run")) return mode_run();
    if (!strcmp(cfg.mode, "populate")) { cfg.mode_w = W_POPULATE; return mode_run(); }
    if (!strcmp(cfg.mode, "fanout")) return mode_fanout();
    if (!strcmp(cfg.mode, "connect")) return mode_connect();
    if (!strcmp(cfg.mode, "fsync")) return mode_fsync();
    if (!strcmp(cfg.mode, "failover")) return mode_failover();
    usage();
    return 2;
}
