#ifndef LOA_CCURL_SHIM_H
#define LOA_CCURL_SHIM_H

#include <curl/curl.h>

// curl_easy_setopt is variadic, which Swift cannot call: one fixed-type wrapper per argument kind.
static inline CURLcode ccurl_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
// curl_easy_setopt variant for char* / void* arguments (strings are copied by libcurl, other pointers are not).
static inline CURLcode ccurl_easy_setopt_pointer(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
// curl_easy_setopt variant for curl_off_t arguments (the *_LARGE options).
static inline CURLcode ccurl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
// curl_easy_setopt variant for CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION.
static inline CURLcode ccurl_easy_setopt_write_callback(CURL *h, CURLoption o, curl_write_callback v) { return curl_easy_setopt(h, o, v); }
// curl_easy_setopt variant for CURLOPT_READFUNCTION.
static inline CURLcode ccurl_easy_setopt_read_callback(CURL *h, CURLoption o, curl_read_callback v) { return curl_easy_setopt(h, o, v); }
// curl_easy_setopt variant for CURLOPT_PREREQFUNCTION (libcurl 7.80+).
static inline CURLcode ccurl_easy_setopt_prereq_callback(CURL *h, CURLoption o, curl_prereq_callback v) { return curl_easy_setopt(h, o, v); }
// curl_easy_getinfo is variadic: wrapper for CURLINFO_LONG results.
static inline CURLcode ccurl_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
// curl_easy_getinfo is variadic: wrapper for CURLINFO_OFF_T results.
static inline CURLcode ccurl_easy_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
// curl_easy_getinfo is variadic: wrapper for pointer results (CURLINFO_PRIVATE).
static inline CURLcode ccurl_easy_getinfo_pointer(CURL *h, CURLINFO i, char **v) { return curl_easy_getinfo(h, i, v); }
// curl_multi_setopt is variadic: wrapper for long arguments.
static inline CURLMcode ccurl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

#endif
