#ifndef LOA_CLIBPQ_SHIM_H
#define LOA_CLIBPQ_SHIM_H
// libpq's API has no variadic functions or function-like macros Loa needs: the header alone.
// pkg-config `libpq` (Debian libpq-dev) puts libpq-fe.h on the include path.
#include <libpq-fe.h>
#endif
