/* The baseline for Tests/Benchmarks/dispatch.sh: a plain libcurl multi client that sends N GET requests to
 * one URL with C transfers in flight, keep-alive, bodies discarded, and prints requests per second.
 * It does what Loa's HTTP engine does minus everything else (store, limiter, log), on the same sink.
 * With a BODY it POSTs it (text/plain, plus Kannel's X-Kannel-* headers), as Loa's Kannel adapter does in POST mode;
 * HEADERs after the BODY replace those X-Kannel-* headers (Tests/Benchmarks/kannel.sh gives Kannel's credentials).
 *   cc -O2 -o curl-multi curl-multi.c -lcurl && ./curl-multi URL N C [BODY [HEADER...]] */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s URL N CONCURRENCY [POST_BODY [HEADER...]]\n", argv[0]); return 2; }
    const char *url = argv[1];
    const char *body = argc >= 5 ? argv[4] : NULL;
    struct curl_slist *headers = NULL;
    if (argc > 5) {
        headers = curl_slist_append(headers, "Content-Type: text/plain; charset=UTF-8");
        for (int i = 5; i < argc; i++) headers = curl_slist_append(headers, argv[i]);
    } else if (body) {
        headers = curl_slist_append(headers, "Content-Type: text/plain; charset=UTF-8");
        headers = curl_slist_append(headers, "X-Kannel-Username: u");
        headers = curl_slist_append(headers, "X-Kannel-Password: x");
        headers = curl_slist_append(headers, "X-Kannel-From: LOA");
        headers = curl_slist_append(headers, "X-Kannel-To: +84910000001");
        headers = curl_slist_append(headers, "X-Kannel-DLR-Mask: 31");
        headers = curl_slist_append(headers, "X-Kannel-DLR-Url: http://127.0.0.1/dlr?k=secret&id=1");
    }
    long total = atol(argv[2]), conc = atol(argv[3]), started = 0, done = 0, failed = 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, conc);
    CURL **h = calloc(conc, sizeof *h);
    double t0 = now();
    for (long i = 0; i < conc && started < total; i++, started++) {
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_URL, url);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h[i], CURLOPT_TIMEOUT, 15L);
        if (body) {
            curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, headers);
        }
        curl_multi_add_handle(m, h[i]);
    }
    while (done < total) {
        int running = 0, q = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            long code = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result != CURLE_OK || code >= 300 || code < 200) failed++;
            done++;
            curl_multi_remove_handle(m, e);
            if (started < total) { started++; curl_multi_add_handle(m, e); }  /* reuse: keeps its connection */
        }
        if (done < total) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double span = now() - t0;
    printf("%.0f\n", total / span);
    fprintf(stderr, "curl-multi: %ld requests, %ld failed, %.2f s\n", total, failed, span);
    for (long i = 0; i < conc; i++) if (h[i]) { curl_multi_remove_handle(m, h[i]); curl_easy_cleanup(h[i]); }
    curl_multi_cleanup(m);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
