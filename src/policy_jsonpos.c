/*-------------------------------------------------------------------------
 *
 * policy_jsonpos.c
 *	  Find the line and column of a path inside a JSON text.
 *
 * A small scanner that walks a syntactically valid JSON text and stops at
 * the key or value named by a path.  It never allocates and never fails
 * on valid input; on anything unexpected it gives up and returns false, so
 * the caller reports the error without a position rather than a wrong one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "policy_jsonpos.h"

typedef struct Scanner
{
	const char *p;
	const char *end;
	int			line;
	int			column;
} Scanner;

/*
 * advance
 *		Move one byte forward, counting lines and characters (UTF-8
 *		continuation bytes do not start a new column).
 */
static void
advance(Scanner *s)
{
	if (*s->p == '\n')
	{
		s->line++;
		s->column = 1;
	}
	else if ((*s->p & 0xC0) != 0x80)
		s->column++;
	s->p++;
}

/*
 * skip_ws
 *		Skip JSON white space.
 */
static void
skip_ws(Scanner *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		advance(s);
}

/*
 * scan_string
 *		Skip a string token; if want is not NULL, report whether its raw
 *		contents equal want (keys with escapes never match, which only
 *		costs a position, never a wrong one).
 */
static bool
scan_string(Scanner *s, const char *want, bool *matches)
{
	const char *start;

	if (s->p >= s->end || *s->p != '"')
		return false;
	advance(s);
	start = s->p;
	while (s->p < s->end && *s->p != '"')
	{
		if (*s->p == '\\')
		{
			advance(s);
			if (s->p >= s->end)
				return false;
		}
		advance(s);
	}
	if (s->p >= s->end)
		return false;
	if (want != NULL)
		*matches = (strlen(want) == (size_t) (s->p - start) &&
					strncmp(want, start, s->p - start) == 0);
	advance(s);
	return true;
}

static bool skip_value(Scanner *s, int depth);

/*
 * skip_container
 *		Skip an object or an array whose opening bracket is at s->p.
 */
static bool
skip_container(Scanner *s, int depth)
{
	char		close = (*s->p == '{') ? '}' : ']';
	bool		is_object = (*s->p == '{');

	if (depth > 4096)
		return false;
	advance(s);
	skip_ws(s);
	if (s->p < s->end && *s->p == close)
	{
		advance(s);
		return true;
	}
	for (;;)
	{
		if (is_object)
		{
			if (!scan_string(s, NULL, NULL))
				return false;
			skip_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return false;
			advance(s);
		}
		if (!skip_value(s, depth + 1))
			return false;
		skip_ws(s);
		if (s->p >= s->end)
			return false;
		if (*s->p == close)
		{
			advance(s);
			return true;
		}
		if (*s->p != ',')
			return false;
		advance(s);
		skip_ws(s);
	}
}

/*
 * skip_value
 *		Skip any JSON value (with leading white space).
 */
static bool
skip_value(Scanner *s, int depth)
{
	skip_ws(s);
	if (s->p >= s->end)
		return false;
	if (*s->p == '"')
		return scan_string(s, NULL, NULL);
	if (*s->p == '{' || *s->p == '[')
		return skip_container(s, depth);
	/* number, true, false, null */
	while (s->p < s->end && strchr(" \t\r\n,]}", *s->p) == NULL)
		advance(s);
	return true;
}

/*
 * policy_jsonpos_locate
 *		Set *line and *column (1-based) to the position of the value at
 *		the path, or of its key when at_key is true and the last step is a
 *		key.  An empty path means the whole document.  Returns false if the
 *		path is not found.
 */
bool
policy_jsonpos_locate(const char *text, size_t len, const JsonPathStep *steps,
			int nsteps, bool at_key, int *line, int *column)
{
	Scanner		s = {text, text + len, 1, 1};
	int			i;

	skip_ws(&s);
	for (i = 0; i < nsteps; i++)
	{
		const JsonPathStep *step = &steps[i];
		bool		found = false;
		int			n = 0;

		if (s.p >= s.end)
			return false;
		if (step->key != NULL ? *s.p != '{' : *s.p != '[')
			return false;
		advance(&s);
		skip_ws(&s);
		if (s.p < s.end && (*s.p == '}' || *s.p == ']'))
			return false;
		while (!found)
		{
			if (step->key != NULL)
			{
				int			kline = s.line,
							kcol = s.column;
				bool		match = false;

				if (!scan_string(&s, step->key, &match))
					return false;
				if (match && at_key && i == nsteps - 1)
				{
					*line = kline;
					*column = kcol;
					return true;
				}
				skip_ws(&s);
				if (s.p >= s.end || *s.p != ':')
					return false;
				advance(&s);
				found = match;
			}
			else
				found = (n++ == step->index);

			if (found)
				skip_ws(&s);
			else
			{
				if (!skip_value(&s, 0))
					return false;
				skip_ws(&s);
				if (s.p >= s.end || *s.p != ',')
					return false;
				advance(&s);
				skip_ws(&s);
			}
		}
	}
	*line = s.line;
	*column = s.column;
	return true;
}

/*
 * policy_jsonpos_format
 *		Render a path as $.a.b[2].c into buf.
 */
void
policy_jsonpos_format(const JsonPathStep *steps, int nsteps, char *buf,
				 size_t buflen)
{
	size_t		used;
	int			i;

	used = strlcpy(buf, "$", buflen);
	for (i = 0; i < nsteps && used < buflen; i++)
	{
		if (steps[i].key != NULL)
			used += snprintf(buf + used, buflen - used, ".%s", steps[i].key);
		else
			used += snprintf(buf + used, buflen - used, "[%d]", steps[i].index);
	}
}
