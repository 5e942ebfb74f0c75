/*
 * cfg.h - the configuration file: INI sections, validated keys.
 *
 * Every key of every section is checked against a table when the file is
 * loaded; an unknown section or key, a bad number or enum value, or a
 * duplicate is an error that names the file, the line and the key.
 */
#ifndef OE_CFG_H
#define OE_CFG_H

#include <stddef.h>
#include <stdint.h>

struct cfg_kv {
	char *key;
	char *value;
	int line;
};

struct cfg_section {
	char *name;   /* "store", "ca local", "smtp default" */
	int line;
	struct cfg_kv *kv;
	size_t nkv;
};

struct cfg {
	char *path;
	struct cfg_section *sec;
	size_t nsec;
};

/* Longest accepted line, in bytes, newline excluded (a cipher list is
 * a long value). */
#define CFG_MAX_LINE 4096
/* Largest accepted file. */
#define CFG_MAX_FILE (1024 * 1024)

/*
 * Parse and validate PATH.  On error returns NULL and writes
 * "FILE line N: ..." into err.
 */
struct cfg *cfg_load(const char *path, char *err, size_t errlen);
/* Same, from memory (tests and fuzzing); name is used in messages. */
struct cfg *cfg_load_mem(const char *name, const char *data, size_t len, char *err,
			 size_t errlen);
void cfg_free(struct cfg *cfg);

const struct cfg_section *cfg_section(const struct cfg *cfg, const char *name);
/* Value as written, or NULL when absent or empty ("key ="). */
const char *cfg_get(const struct cfg *cfg, const char *section, const char *key);
/* Value or def. */
const char *cfg_str(const struct cfg *cfg, const char *section, const char *key,
		    const char *def);
/* Numeric value (validated at load) or def. */
uint64_t cfg_uint(const struct cfg *cfg, const char *section, const char *key,
		  uint64_t def);

#endif
