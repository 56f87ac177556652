/*
 * JSON strings for the connection log and the metrics handler's JSON.
 */
#ifndef SWIFTWS_JSON_H
#define SWIFTWS_JSON_H

#include "apr_pools.h"

/* `text` as a JSON string, quotes included ("null" for NULL). UTF-8 goes
 * through as it is; a byte that is not part of valid UTF-8 (a path may
 * hold any after %-decoding) is written as \u00XX, so the line stays
 * valid JSON. */
const char *swiftws_json_string(apr_pool_t *p, const char *text);

#endif
