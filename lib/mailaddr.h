/*
 * mailaddr.h - what a mail address may be.  Built into the library
 * (`otpenroll user set --email`, the [users] email template) and into
 * the usernotification handler, so that an address stored for a user is
 * one the handler will mail.
 */
#ifndef OE_MAILADDR_H
#define OE_MAILADDR_H

#include <stdbool.h>

/* Whether a is a plain local@domain address (mailaddr.c says which). */
bool mailaddr_valid(const char *a);

#endif
