/* client.h - the command line's side of the otpenrolld socket. */
#ifndef OE_CLIENT_H
#define OE_CLIENT_H

#include <stddef.h>

#include <jansson.h>

/*
 * Send req to the daemon at socket_path and return its final reply.
 * When the daemon asks for a one-time password, it is read from the
 * terminal without echo, or from standard input when that is not a
 * terminal.  NULL with err set when the daemon cannot be reached or
 * answers nonsense.
 */
json_t *client_call(const char *socket_path, json_t *req, char *err, size_t errlen);

/* Read one line of secret input into buf: without echo on a terminal
 * (the controlling one, else standard input), whose modes a SIGINT,
 * SIGTERM, SIGHUP or SIGQUIT meanwhile restores before it acts. */
int client_read_secret(const char *prompt, char *buf, size_t len);

#endif
