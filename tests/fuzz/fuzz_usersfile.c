/* fuzz_usersfile - libFuzzer target for the pam_oath usersfile line parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uf_line l;
	char *line;

	if (size > 4096 || (line = malloc(size + 1)) == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	/* The importer skips blank and comment lines before parsing. */
	if (line[strspn(line, " \t\r\n")] != '\0' && line[strspn(line, " \t\r\n")] != '#')
		(void)import_parse_line(line + strspn(line, " \t\r\n"), &l);
	free(line);
	return 0;
}
