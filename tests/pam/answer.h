/*
 * answer.h - a PAM conversation that answers each prompt with one text
 * (conv_answer), for the programs that drive pam_otpenroll through libpam:
 * test_race, test_pam_oom and tests/bench/pam_bench.  Included once per
 * program, after <security/pam_appl.h>.
 */
#ifndef OE_TEST_ANSWER_H
#define OE_TEST_ANSWER_H

#include <stdlib.h>
#include <string.h>

static const char *conv_answer;

static int
answer_conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct pam_response *r = calloc((size_t)n, sizeof(*r));

	(void)data;
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++)
		if ((msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		     msg[i]->msg_style == PAM_PROMPT_ECHO_ON) &&
		    (r[i].resp = strdup(conv_answer)) == NULL) {
			for (int j = 0; j < i; j++)
				free(r[j].resp);
			free(r);
			return PAM_BUF_ERR;
		}
	*resp = r;
	return PAM_SUCCESS;
}

#endif
