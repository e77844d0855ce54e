// CCohortPluginABI is the header in include/; this file exists because a C target needs a source.
#include "cohort_plugin.h"

uint32_t cohort_plugin_header_abi(void) { return COHORT_PLUGIN_ABI; }
