/*
 * daemon_pam.c - check an OTP through the PAM service "otpenroll".
 *
 * Going through PAM (rather than calling the library directly) lets the
 * admin decide in /etc/pam.d/otpenroll what a fresh OTP check means,
 * and the pam_otpenroll module records the grant exactly as at login.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <security/pam_appl.h>

#include "daemon.h"

struct answer {
	const char *code;
	int asked;
};

static int
conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct answer *a = data;
	struct pam_response *r;

	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	if ((r = calloc((size_t)n, sizeof(*r))) == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
		case PAM_PROMPT_ECHO_ON:
			/* One code, for one prompt: a stack asking twice gets nothing. */
			if (a->asked++ == 0 && (r[i].resp = strdup(a->code)) == NULL)
				goto fail;
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			break;
		default:
			goto fail;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < n; i++)
		if (r[i].resp) {
			explicit_bzero(r[i].resp, strlen(r[i].resp));
			free(r[i].resp);
		}
	free(r);
	return PAM_CONV_ERR;
}

int
daemon_pam_check(const char *service, const char *user, const char *code, char *why,
		 size_t len)
{
	struct answer a = { code, 0 };
	struct pam_conv c = { conv, &a };
	pam_handle_t *pamh = NULL;
	int rc;

	rc = pam_start(service, user, &c, &pamh);
	if (rc != PAM_SUCCESS) {
		snprintf(why, len, "PAM service %s: %s", service, pam_strerror(pamh, rc));
		return -1;
	}
	rc = pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if (rc == PAM_SUCCESS)
		rc = pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if (rc != PAM_SUCCESS)
		snprintf(why, len, "%s", pam_strerror(pamh, rc));
	pam_end(pamh, rc);
	return rc == PAM_SUCCESS ? 0 : -1;
}
