/* qr.c - an otpauth URI as a QR code on the terminal, for phone apps. */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include <qrencode.h>

#include "cli.h"

/*
 * Two modules per character cell with Unicode half blocks, dark on light
 * with a quiet zone, so a phone reads it off a dark terminal too.
 */
void
qr_print(FILE *out, const char *text)
{
	static const char *const cell[4] = { "\u2588", "\u2580", "\u2584", " " };
	const int quiet = 2;
	QRcode *qr;
	int w;

	if (!isatty(fileno(out)))
		return;
	if ((qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1)) == NULL)
		return;
	w = qr->width;
	for (int y = -quiet; y < w + quiet; y += 2) {
		for (int x = -quiet; x < w + quiet; x++) {
			int top = y >= 0 && y < w && x >= 0 && x < w && (qr->data[y * w + x] & 1);
			int bot = y + 1 >= 0 && y + 1 < w && x >= 0 && x < w &&
				  (qr->data[(y + 1) * w + x] & 1);
			/* Light is drawn, dark is left blank: index by darkness. */
			fputs(cell[(top ? 2 : 0) + (bot ? 1 : 0)], out);
		}
		fputc('\n', out);
	}
	QRcode_free(qr);
}
