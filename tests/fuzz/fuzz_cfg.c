/* fuzz_cfg - libFuzzer target for the configuration parser. */
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct cfg *cfg = cfg_load_mem("fuzz.conf", (const char *)data, size, err, sizeof(err));

	if (cfg) {
		(void)cfg_get(cfg, "store", "url");
		(void)cfg_uint(cfg, "otp", "window", 3);
		(void)cfg_section(cfg, "ca local");
		cfg_free(cfg);
	}
	return 0;
}
