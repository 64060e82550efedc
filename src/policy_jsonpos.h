/*-------------------------------------------------------------------------
 *
 * policy_jsonpos.h
 *	  Find the line and column of a path inside a JSON text.
 *
 * jansson does not keep source positions for values it has parsed, so
 * semantic errors in a policy document are located afterwards by walking
 * the (already valid) text along the path of the offending key.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_JSONPOS_H
#define LOYALTY_JSONPOS_H

#define JSONPOS_MAX_DEPTH 16

/* one step of a path: an object key, or (key == NULL) an array index */
typedef struct JsonPathStep
{
	const char *key;
	int			index;
} JsonPathStep;

extern bool policy_jsonpos_locate(const char *text, size_t len,
						const JsonPathStep *steps, int nsteps, bool at_key,
						int *line, int *column);
extern void policy_jsonpos_format(const JsonPathStep *steps, int nsteps,
							 char *buf, size_t buflen);

#endif							/* LOYALTY_JSONPOS_H */
