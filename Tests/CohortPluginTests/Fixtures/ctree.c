// A Cohort plugin written in C, compiled by the tests at run time (outside any Swift package) to
// show that the plugin boundary is C and nothing else. It offers one codec, `codec.ctree`, whose
// wire format is the boundary's own value tree behind a 4-byte length.
//
// Compiled with one of these defines, it becomes a broken library the loader must refuse:
//   FIXTURE_BAD_ABI        the table claims ABI 999
//   FIXTURE_NULL_TABLE     the entry point returns NULL
//   FIXTURE_BAD_MANIFEST   the manifest is not JSON
//   FIXTURE_UNKNOWN_KIND   the manifest names a kind no host knows
//   FIXTURE_RETIRED_ABI    only the entry symbol of the retired ABI 2 is exported
//   FIXTURE_NO_ENTRY       no entry symbol at all
#include "cohort_plugin.h"
#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *out, uint32_t v) {
    out[0] = (uint8_t)(v >> 24); out[1] = (uint8_t)(v >> 16); out[2] = (uint8_t)(v >> 8); out[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *in) {
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | (uint32_t)in[3];
}

static void fail(void *context, cohort_plugin_reply_fn reply, const char *message) {
    reply(context, 1, (const uint8_t *)message, strlen(message));
}

typedef struct instance { cohort_plugin_port host; } instance;

static void instance_invoke(void *context, uint32_t operation, const uint8_t *bytes, size_t count,
                            void *reply_context, cohort_plugin_reply_fn reply) {
    (void)context;
    if (!reply) return;
    switch (operation) {
    case 1: { // describe: codec id, then the name with a 4-byte length
        uint8_t out[1 + 4 + 5] = {200};
        put_u32(out + 1, 5);
        memcpy(out + 5, "ctree", 5);
        reply(reply_context, 0, out, sizeof out);
        return;
    }
    case 51: { // encode: tree -> length + tree
        uint8_t *out = malloc(count + 4);
        if (!out) { fail(reply_context, reply, "internal\nout of memory"); return; }
        put_u32(out, (uint32_t)count);
        if (count) memcpy(out + 4, bytes, count);
        reply(reply_context, 0, out, count + 4);
        free(out);
        return;
    }
    case 52: { // decode: length + tree -> bytes consumed + tree
        if (count < 4) { fail(reply_context, reply, "codecFailure\nctree: fewer than 4 bytes"); return; }
        uint32_t length = get_u32(bytes);
        if (length > count - 4) { fail(reply_context, reply, "codecFailure\nctree: the value is longer than the input"); return; }
        uint8_t *out = malloc((size_t)length + 4);
        if (!out) { fail(reply_context, reply, "internal\nout of memory"); return; }
        put_u32(out, length + 4);
        if (length) memcpy(out + 4, bytes + 4, length);
        reply(reply_context, 0, out, (size_t)length + 4);
        free(out);
        return;
    }
    default:
        fail(reply_context, reply, "internal\nctree: unknown operation");
    }
}

static void instance_release(void *context) {
    instance *self = context;
    if (self->host.release) self->host.release(self->host.context);
    free(self);
}

static int32_t create(const char *plugin_id, const uint8_t *settings, size_t settings_count,
                      cohort_plugin_port host, cohort_plugin_port *out,
                      void *error_context, cohort_plugin_reply_fn error) {
    (void)settings; (void)settings_count;
    if (strcmp(plugin_id, "codec.ctree") != 0) {
        if (host.release) host.release(host.context);
        fail(error_context, error, "pluginNotFound\nctree offers only codec.ctree");
        return 1;
    }
    instance *self = malloc(sizeof *self);
    if (!self) {
        if (host.release) host.release(host.context);
        fail(error_context, error, "internal\nout of memory");
        return 1;
    }
    self->host = host;
    out->context = self;
    out->invoke = instance_invoke;
    out->release = instance_release;
    return 0;
}

#if defined(FIXTURE_BAD_MANIFEST)
#define MANIFEST "this is not JSON"
#elif defined(FIXTURE_UNKNOWN_KIND)
#define MANIFEST "{\"sdk\":\"c\",\"plugins\":[{\"id\":\"teleport.ctree\",\"kind\":\"teleport\",\"version\":\"0.1.0\",\"summary\":\"a kind no host knows\"}]}"
#else
#define MANIFEST "{\"sdk\":\"c\",\"plugins\":[{\"id\":\"codec.ctree\",\"kind\":\"codec\",\"version\":\"0.1.0\",\"summary\":\"the boundary's value tree as a codec, written in C\"}]}"
#endif

#if defined(FIXTURE_BAD_ABI)
#define ABI 999
#else
#define ABI COHORT_PLUGIN_ABI
#endif

static const cohort_plugin_api api = {ABI, sizeof(cohort_plugin_api), MANIFEST, create};

#if defined(FIXTURE_RETIRED_ABI)
uint32_t cohort_plugin_abi_version(void) { return 2; }
#elif defined(FIXTURE_NO_ENTRY)
int cohort_fixture_not_a_plugin(void) { return 1; }
#elif defined(FIXTURE_NULL_TABLE)
const cohort_plugin_api *cohort_plugin_entry(void) { return NULL; }
#else
const cohort_plugin_api *cohort_plugin_entry(void) { return &api; }
#endif
