#ifndef LOA_CSQLITE_SHIM_H
#define LOA_CSQLITE_SHIM_H
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a function-pointer cast macro that Swift cannot import:
/// it tells sqlite3_bind_text/blob to copy the buffer before returning.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

/// sqlite3_config is variadic; Loa only needs the single-int form (e.g. SQLITE_CONFIG_MULTITHREAD).
static inline int csqlite_config_noarg(int op) { return sqlite3_config(op); }
#endif
