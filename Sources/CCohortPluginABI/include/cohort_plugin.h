// The C boundary between a Cohort host and a plugin library.
//
// A plugin library exports one function, `cohort_plugin_entry`, returning a pointer to a static
// `cohort_plugin_api`. Host and plugin exchange nothing but the plain C types below: bytes, integers
// and function pointers. Neither side sees the other's Swift types, so a plugin may be built by
// another package, with its own copies of SwiftNIO and the Cohort core, and linked statically.
//
// Every call is a message: an operation number and a byte string, encoded as described in
// docs/plugins.md. Byte strings passed to a function are valid only during that call; the callee
// copies what it keeps.
#ifndef COHORT_PLUGIN_H
#define COHORT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Nullability annotations are clang's; other compilers read the header without them.
#if !defined(__clang__)
#define _Nullable
#define _Nonnull
#endif

/// The ABI this header describes. A host refuses a plugin built for another value. History:
/// 1, 2 — a shared Swift core library (retired); 3 — this C boundary.
#define COHORT_PLUGIN_ABI 3

/// The name of the entry point a plugin library exports.
#define COHORT_PLUGIN_ENTRY_SYMBOL "cohort_plugin_entry"

/// Delivers the answer to a request: `status` 0 means success and `bytes` is the result; any
/// other status is a failure and `bytes` is a UTF-8 message. Called exactly once per request
/// that asked for an answer, from any thread, possibly before `invoke` returns.
typedef void (*cohort_plugin_reply_fn)(void *_Nullable reply_context, int32_t status,
                                       const uint8_t *_Nullable bytes, size_t count);

/// One side of a connection between host and plugin: how to call it, and how to let it go.
typedef struct cohort_plugin_port {
    /// Passed back to `invoke` and `release`.
    void *_Nullable context;
    /// Sends a request. `reply` may be NULL for a request that needs no answer. Must not block.
    void (*_Nullable invoke)(void *_Nullable context, uint32_t operation,
                             const uint8_t *_Nullable bytes, size_t count,
                             void *_Nullable reply_context, cohort_plugin_reply_fn _Nullable reply);
    /// Called once when the other side will not use this port again.
    void (*_Nullable release)(void *_Nullable context);
} cohort_plugin_port;

/// What `cohort_plugin_entry` returns. Fields are only ever added at the end; `size` says how
/// many bytes of it the plugin knows.
typedef struct cohort_plugin_api {
    /// `COHORT_PLUGIN_ABI` when the plugin was built. Read first, before anything else.
    uint32_t abi_version;
    /// `sizeof(cohort_plugin_api)` when the plugin was built.
    uint32_t size;
    /// A NUL-terminated JSON document naming the plugins in the library:
    /// {"sdk":"…","plugins":[{"id":"…","kind":"transport|codec|discovery|interceptor","version":"…","summary":"…"}]}
    /// (the kind `interceptor` and its operations 90–91 were added within ABI 3; see docs/plugins.md)
    const char *_Nullable manifest_json;
    /// Makes an instance of one plugin. `settings` is a JSON document (see docs/plugins.md);
    /// `host` is how the instance calls back (events, inbound messages), owned by the plugin from
    /// now on whether `create` succeeds or not; the plugin releases it when it no longer calls
    /// it (after the instance is released, or at once on failure). On success returns 0 and fills
    /// `instance`, which the host releases when done. On failure returns non-zero and reports the
    /// message through `error` (called before `create` returns).
    int32_t (*_Nullable create)(const char *_Nonnull plugin_id,
                                const uint8_t *_Nullable settings, size_t settings_count,
                                cohort_plugin_port host, cohort_plugin_port *_Nonnull instance,
                                void *_Nullable error_context, cohort_plugin_reply_fn _Nonnull error);
} cohort_plugin_api;

/// The signature of `cohort_plugin_entry`.
typedef const cohort_plugin_api *_Nullable (*cohort_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
