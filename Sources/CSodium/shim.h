#ifndef LOA_CSODIUM_SHIM_H
#define LOA_CSODIUM_SHIM_H
#include <sodium.h>

/// crypto_pwhash_ALG_ARGON2ID13 is a macro; Swift imports it, but naming it here keeps the algorithm Loa stores
/// (`$argon2id$…`) written in one place on the C side too.
static inline int csodium_alg_argon2id13(void) { return crypto_pwhash_ALG_ARGON2ID13; }
#endif
