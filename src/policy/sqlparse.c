/*
 * Statement classification on the raw parse tree; see sqlparse.h.
 *
 * The walker visits every node of a statement. Statement nodes set the base
 * class; expression nodes are searched for side-effecting functions, row
 * locks, sub-statements and relations. A node type not handled below sets
 * GW_SQL_F_UNKNOWN (fail closed).
 */
#include "postgres.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include <pg_query.h>
#include <pg_query/pg_query_internal.h>

/* PostgreSQL's port.h renames the printf family; this file wants libc's. */
#undef snprintf
#undef vsnprintf
#undef strerror

#include "policy/sqlparse.h"
#include "core/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct walk {
	gw_sql_stmt *st;
	int depth;
	/* CTE names in scope (innermost last): a reference to one is not a table */
	const char *ctes[64];
	int nctes;
} walk;

static void visit(walk *w, const Node *n);

static void raise_class(walk *w, enum gw_sql_class c)
{
	if (c > w->st->cls)
		w->st->cls = c;
}

static void unknown(walk *w)
{
	w->st->flags |= GW_SQL_F_UNKNOWN;
	raise_class(w, GW_SQL_ADMIN);
}

static void add_name(char ***arr, size_t *n, const char *a, const char *b)
{
	char *name = b ? gw_xasprintf("%s.%s", a, b) : gw_xstrdup(a);
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*arr)[i], name)) {
			free(name);
			return;
		}
	*arr = gw_xrealloc(*arr, (*n + 1) * sizeof(char *));
	(*arr)[(*n)++] = name;
}

/* An operator's name (a user-defined one runs its function on the operands): the last of its names. */
static void operator_name(walk *w, const List *name)
{
	if (list_length(name) && IsA(llast(name), String))
		add_name(&w->st->operators, &w->st->noperators, strVal(llast(name)), NULL);
}

static void visit_list(walk *w, const List *l)
{
	const ListCell *lc;
	foreach(lc, l)
		visit(w, lfirst(lc));
}

/* A table a statement writes (INSERT/UPDATE/DELETE/MERGE target): never a CTE, whatever is in scope. */
static void add_relation(walk *w, const RangeVar *rv)
{
	if (strchr(rv->relname, '.') || (rv->schemaname && strchr(rv->schemaname, '.'))) {
		w->st->flags |= GW_SQL_F_OPAQUE; /* a quoted name with a dot would read as schema.table */
		return;
	}
	add_name(&w->st->relations, &w->st->nrelations, rv->schemaname ? rv->schemaname : rv->relname,
		rv->schemaname ? rv->relname : NULL);
}

static void target(walk *w, const RangeVar *rv)
{
	if (rv && rv->relname)
		add_relation(w, rv);
}

static void relation(walk *w, const RangeVar *rv)
{
	if (!rv || !rv->relname)
		return;
	if (!rv->schemaname && !rv->catalogname)
		for (int i = w->nctes - 1; i >= 0; i--)
			if (!strcmp(w->ctes[i], rv->relname))
				return;
	add_relation(w, rv);
}

/* Built-in functions with side effects, and the class they need. */
typedef struct fn_rule {
	const char *name;
	bool prefix;
	enum gw_sql_class cls;
} fn_rule;

static const fn_rule fn_rules[] = {
	{"nextval", false, GW_SQL_WRITE}, {"setval", false, GW_SQL_WRITE},
	{"pg_advisory_", true, GW_SQL_WRITE}, {"pg_try_advisory_", true, GW_SQL_WRITE},
	{"pg_notify", false, GW_SQL_WRITE}, {"txid_current", false, GW_SQL_WRITE},
	{"pg_current_xact_id", false, GW_SQL_WRITE},
	{"lo_", true, GW_SQL_ADMIN}, {"loread", false, GW_SQL_ADMIN}, {"lowrite", false, GW_SQL_ADMIN},
	{"set_config", false, GW_SQL_ADMIN}, {"pg_terminate_backend", false, GW_SQL_ADMIN},
	{"pg_cancel_backend", false, GW_SQL_ADMIN}, {"pg_reload_conf", false, GW_SQL_ADMIN},
	{"pg_rotate_logfile", false, GW_SQL_ADMIN}, {"pg_read_file", false, GW_SQL_ADMIN},
	{"pg_read_binary_file", false, GW_SQL_ADMIN}, {"pg_ls_", true, GW_SQL_ADMIN},
	{"pg_stat_file", false, GW_SQL_ADMIN}, {"pg_file_", true, GW_SQL_ADMIN},
	{"dblink", true, GW_SQL_ADMIN}, {"pg_switch_wal", false, GW_SQL_ADMIN},
	{"pg_promote", false, GW_SQL_ADMIN}, {"pg_create_", true, GW_SQL_ADMIN},
	{"pg_drop_replication_slot", false, GW_SQL_ADMIN}, {"pg_replication_", true, GW_SQL_ADMIN},
	{"pg_logical_", true, GW_SQL_ADMIN}, {"pg_backup_", true, GW_SQL_ADMIN},
	{"pg_start_backup", false, GW_SQL_ADMIN}, {"pg_stop_backup", false, GW_SQL_ADMIN},
	{"pg_stat_reset", true, GW_SQL_ADMIN}, {"pg_import_system_collations", false, GW_SQL_ADMIN},
	{"pg_log_backend_memory_contexts", false, GW_SQL_ADMIN}, {"pg_wal_replay_", true, GW_SQL_ADMIN},
	{"pg_copy_", true, GW_SQL_ADMIN}, {"brin_summarize_", true, GW_SQL_WRITE},
	{"brin_desummarize_range", false, GW_SQL_WRITE}, {"gin_clean_pending_list", false, GW_SQL_WRITE},
	/* these run SQL given as text, or read a table named by an argument */
	{"query_to_xml", true, GW_SQL_ADMIN}, {"table_to_xml", true, GW_SQL_ADMIN},
	{"cursor_to_xml", true, GW_SQL_ADMIN}, {"schema_to_xml", true, GW_SQL_ADMIN},
	{"database_to_xml", true, GW_SQL_ADMIN}, {"ts_stat", false, GW_SQL_ADMIN},
	{"ts_rewrite", false, GW_SQL_ADMIN},
	{"pg_sleep", true, GW_SQL_READ},
};

static void func_call(walk *w, const FuncCall *fc)
{
	const char *schema = NULL, *name = NULL;
	int n = list_length(fc->funcname);
	if (n >= 1)
		name = strVal(llast(fc->funcname));
	if (n >= 2)
		schema = strVal(list_nth(fc->funcname, n - 2));
	if (name) {
		/*
		 * The deny list matches in any schema: an extension's dblink in public
		 * is as dangerous as one in pg_catalog, and a user function that merely
		 * shares a name is only over-classified.
		 */
		bool matched = false;
		for (size_t i = 0; i < GW_ARRAY_LEN(fn_rules); i++) {
			const fn_rule *r = &fn_rules[i];
			if (r->prefix ? !strncmp(name, r->name, strlen(r->name)) : !strcmp(name, r->name)) {
				raise_class(w, r->cls);
				if (r->cls >= GW_SQL_WRITE)
					w->st->flags |= GW_SQL_F_STATEFUL_CALL;
				matched = true;
				break;
			}
		}
		if (!matched)
			add_name(&w->st->functions, &w->st->nfunctions, schema ? schema : name, schema ? name : NULL);
	}
	visit_list(w, fc->args);
	visit_list(w, fc->agg_order);
	visit(w, fc->agg_filter);
	visit(w, (const Node *)fc->over); /* WindowDef: partitions, order, frame offsets */
}

/*
 * WITH: a CTE's name hides a table of the same name in the statement's body
 * and, for later CTEs (all of them with RECURSIVE), in their queries. Returns
 * the scope depth to restore when the statement is done.
 */
static int with_clause(walk *w, const WithClause *wc)
{
	int saved = w->nctes;
	if (!wc)
		return saved;
	const ListCell *lc;
	if (wc->recursive)
		foreach(lc, wc->ctes) {
			const CommonTableExpr *cte = lfirst(lc);
			if (w->nctes < (int)GW_ARRAY_LEN(w->ctes))
				w->ctes[w->nctes++] = cte->ctename;
			else
				unknown(w);
		}
	foreach(lc, wc->ctes) {
		const CommonTableExpr *cte = lfirst(lc);
		visit(w, cte->ctequery);
		if (!wc->recursive) {
			if (w->nctes < (int)GW_ARRAY_LEN(w->ctes))
				w->ctes[w->nctes++] = cte->ctename;
			else
				unknown(w);
		}
	}
	return saved;
}

/*
 * A field selection, (expr).name or tbl.name: PostgreSQL calls a function
 * name(expr) when the row has no such column. Names on the deny list raise
 * the class here; the others go to the catalog lookup, where a name with no
 * VOLATILE function of one argument behind it is just a column.
 */
static void field_name(walk *w, const char *name)
{
	for (size_t i = 0; i < GW_ARRAY_LEN(fn_rules); i++) {
		const fn_rule *r = &fn_rules[i];
		if (r->prefix ? !strncmp(name, r->name, strlen(r->name)) : !strcmp(name, r->name)) {
			raise_class(w, r->cls);
			return;
		}
	}
	add_name(&w->st->fields, &w->st->nfields, name, NULL);
}

static void select_stmt(walk *w, const SelectStmt *s)
{
	if (++w->depth > 500) {
		unknown(w); /* e.g. 200,000 UNION ALLs: refuse rather than recurse on */
		w->depth--;
		return;
	}
	int saved = with_clause(w, s->withClause);
	if (s->intoClause) {
		raise_class(w, GW_SQL_DDL);          /* SELECT INTO creates a table */
		relation(w, s->intoClause->rel);
	}
	if (s->lockingClause)
		raise_class(w, GW_SQL_WRITE);        /* FOR UPDATE / SHARE */
	visit_list(w, s->distinctClause);
	visit_list(w, s->targetList);
	visit_list(w, s->fromClause);
	visit(w, s->whereClause);
	visit_list(w, s->groupClause);
	visit(w, s->havingClause);
	visit_list(w, s->windowClause);
	const ListCell *lc;
	foreach(lc, s->valuesLists)
		visit_list(w, lfirst(lc));
	visit_list(w, s->sortClause);
	visit(w, s->limitOffset);
	visit(w, s->limitCount);
	if (s->larg)
		select_stmt(w, s->larg);
	if (s->rarg)
		select_stmt(w, s->rarg);
	w->nctes = saved;
	w->depth--;
}

/* Settings a read session may change (SPEC: "harmless SET"). */
static bool harmless_setting(const char *name)
{
	static const char *const ok[] = {
		"application_name", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
		"timezone", "datestyle", "intervalstyle", "search_path", "client_encoding", "extra_float_digits",
		"bytea_output", "client_min_messages", "work_mem", "jit", "enable_seqscan", "enable_indexscan",
		"enable_bitmapscan", "enable_hashjoin", "enable_mergejoin", "enable_nestloop", "plan_cache_mode",
		"standard_conforming_strings", "lc_messages", "lc_numeric", "lc_time", "lc_monetary",
		"default_transaction_isolation", "transaction_isolation", "geqo", "random_page_cost",
		"row_security", "timezone_abbreviations", "xmloption", "xmlbinary", "default_text_search_config",
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(ok); i++)
		if (!strcasecmp(name, ok[i]))
			return true;
	return false;
}

static bool is_read_only_setting(const char *name)
{
	return !strcasecmp(name, "default_transaction_read_only") || !strcasecmp(name, "transaction_read_only");
}

/* A SET whose value could turn read-only off (anything but a literal true/on). */
static bool sets_read_write(const List *args)
{
	if (list_length(args) != 1)
		return true;
	const Node *a = linitial(args);
	if (!IsA(a, A_Const))
		return true;
	const A_Const *c = (const A_Const *)a;
	if (c->isnull)
		return true;
	if (IsA(&c->val, String)) {
		const char *v = strVal(&c->val);
		return strcasecmp(v, "on") && strcasecmp(v, "true") && strcasecmp(v, "yes") && strcmp(v, "1");
	}
	if (IsA(&c->val, Integer))
		return intVal(&c->val) == 0;
	if (IsA(&c->val, Boolean))
		return !boolVal(&c->val);
	return true;
}

/*
 * An option value that is certainly false (EXPLAIN (ANALYZE off)); anything
 * else counts as true, as PostgreSQL's defGetBoolean would or could read it.
 */
static bool option_false(const Node *arg)
{
	if (!arg)
		return false;
	if (IsA(arg, Integer))
		return intVal(arg) == 0;
	if (IsA(arg, Boolean))
		return !boolVal(arg);
	if (IsA(arg, String)) {
		const char *v = strVal(arg);
		return !strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
			!strcasecmp(v, "f") || !strcasecmp(v, "n");
	}
	return false;
}

/*
 * Client encodings whose multibyte characters never contain ASCII bytes. In
 * others (SJIS, BIG5, GBK, GB18030, UHC, JOHAB) a trailing byte can be a
 * backslash or quote, and the server would split a statement differently from
 * the gateway's parser.
 */
bool gw_sql_encoding_safe(const char *enc)
{
	char e[32];
	size_t k = 0;
	for (const char *p = enc; *p && k + 1 < sizeof(e); p++)
		if (*p != '-' && *p != '_' && *p != ' ' && *p != '\'')
			e[k++] = (char)tolower((unsigned char)*p);
	e[k] = 0;
	static const char *const ok[] = {
		"utf8", "unicode", "sqlascii", "latin1", "latin2", "latin3", "latin4", "latin5", "latin6", "latin7",
		"latin8", "latin9", "latin10", "iso88591", "iso88592", "iso88593", "iso88594", "iso88595", "iso88596",
		"iso88597", "iso88598", "iso88599", "iso885910", "iso885913", "iso885914", "iso885915", "iso885916",
		"win866", "win874", "win1250", "win1251", "win1252", "win1253", "win1254", "win1255", "win1256",
		"win1257", "win1258", "windows866", "windows874", "windows1250", "windows1251", "windows1252",
		"windows1253", "windows1254", "windows1255", "windows1256", "windows1257", "windows1258", "koi8r",
		"koi8u", "koi8", "eucjp", "euccn", "euckr", "euctw", "eucjis2004", "muleinternal",
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(ok); i++)
		if (!strcmp(e, ok[i]))
			return true;
	return false;
}

/* SET of a setting that changes how the server splits statement text: never through a policy. */
static bool parser_setting_unsafe(const VariableSetStmt *v)
{
	bool scs = !strcasecmp(v->name, "standard_conforming_strings");
	bool enc = !strcasecmp(v->name, "client_encoding");
	if (!scs && !enc)
		return false;
	if (v->kind == VAR_RESET || v->kind == VAR_SET_DEFAULT)
		return false; /* the server's default; the gateway checks the value the server reports */
	if (v->kind != VAR_SET_VALUE || list_length(v->args) != 1 || !IsA(linitial(v->args), A_Const))
		return true;
	const A_Const *c = linitial(v->args);
	if (c->isnull || !IsA(&c->val, String))
		return scs ? !(IsA(&c->val, Boolean) && boolVal(&c->val)) && !(IsA(&c->val, Integer) && intVal(&c->val))
			: true;
	const char *val = strVal(&c->val);
	if (scs)
		return strcasecmp(val, "on") && strcasecmp(val, "true") && strcasecmp(val, "yes") && strcmp(val, "1");
	return !gw_sql_encoding_safe(val);
}

static void variable_set(walk *w, const VariableSetStmt *v)
{
	snprintf(w->st->tag, sizeof(w->st->tag), v->kind == VAR_RESET || v->kind == VAR_RESET_ALL ? "RESET" : "SET");
	switch (v->kind) {
	case VAR_RESET_ALL:
		w->st->flags |= GW_SQL_F_SESSION_RESET;
		return;
	case VAR_SET_MULTI:
		/* SET TRANSACTION / SESSION CHARACTERISTICS: a list of DefElem */
		if (v->name && !strcmp(v->name, "TRANSACTION")) {
			const ListCell *lc;
			foreach(lc, v->args) {
				const DefElem *d = lfirst(lc);
				if (IsA(d, DefElem) && !strcmp(d->defname, "transaction_read_only") && d->arg &&
					sets_read_write(list_make1(d->arg)))
					w->st->flags |= GW_SQL_F_READ_WRITE;
			}
			return;
		}
		if (v->name && !strcmp(v->name, "SESSION CHARACTERISTICS")) {
			w->st->flags |= GW_SQL_F_READ_WRITE;
			raise_class(w, GW_SQL_ADMIN);
			return;
		}
		raise_class(w, GW_SQL_ADMIN);
		return;
	default:
		break;
	}
	if (!v->name) {
		unknown(w);
		return;
	}
	if (!strcasecmp(v->name, "search_path"))
		w->st->flags |= GW_SQL_F_SEARCH_PATH;
	if (parser_setting_unsafe(v)) {
		w->st->flags |= GW_SQL_F_PARSER_STATE;
		raise_class(w, GW_SQL_ADMIN);
		return;
	}
	if (is_read_only_setting(v->name)) {
		if (v->kind != VAR_SET_VALUE || sets_read_write(v->args))
			w->st->flags |= GW_SQL_F_READ_WRITE;
		return;
	}
	if (!harmless_setting(v->name))
		raise_class(w, GW_SQL_ADMIN); /* role, session_authorization, anything not listed */
}

static void set_tag(walk *w, const char *tag)
{
	if (!w->st->tag[0])
		snprintf(w->st->tag, sizeof(w->st->tag), "%s", tag);
}

static void statement_(walk *w, const Node *n);

static void statement(walk *w, const Node *n)
{
	if (!n)
		return;
	if (++w->depth > 500) {
		unknown(w);
		w->depth--;
		return;
	}
	statement_(w, n);
	w->depth--;
}

static void statement_(walk *w, const Node *n)
{
	switch (nodeTag(n)) {
	case T_SelectStmt:
		set_tag(w, "SELECT");
		select_stmt(w, (const SelectStmt *)n);
		return;
	case T_InsertStmt: {
		const InsertStmt *s = (const InsertStmt *)n;
		set_tag(w, "INSERT");
		raise_class(w, GW_SQL_WRITE);
		int saved = with_clause(w, s->withClause);
		target(w, s->relation);
		visit_list(w, s->cols);   /* column list: subscripts may hold expressions */
		visit(w, s->selectStmt);
		if (s->onConflictClause) {
			if (s->onConflictClause->infer) {
				visit_list(w, s->onConflictClause->infer->indexElems);
				visit(w, s->onConflictClause->infer->whereClause);
			}
			visit_list(w, s->onConflictClause->targetList);
			visit(w, s->onConflictClause->whereClause);
		}
		visit_list(w, s->returningList);
		w->nctes = saved;
		return;
	}
	case T_UpdateStmt: {
		const UpdateStmt *s = (const UpdateStmt *)n;
		set_tag(w, "UPDATE");
		raise_class(w, GW_SQL_WRITE);
		if (!s->whereClause)
			w->st->flags |= GW_SQL_F_UPDATE_NO_WHERE;
		int saved = with_clause(w, s->withClause);
		target(w, s->relation);
		visit_list(w, s->targetList);
		visit(w, s->whereClause);
		visit_list(w, s->fromClause);
		visit_list(w, s->returningList);
		w->nctes = saved;
		return;
	}
	case T_DeleteStmt: {
		const DeleteStmt *s = (const DeleteStmt *)n;
		set_tag(w, "DELETE");
		raise_class(w, GW_SQL_WRITE);
		if (!s->whereClause)
			w->st->flags |= GW_SQL_F_DELETE_NO_WHERE;
		int saved = with_clause(w, s->withClause);
		target(w, s->relation);
		visit_list(w, s->usingClause);
		visit(w, s->whereClause);
		visit_list(w, s->returningList);
		w->nctes = saved;
		return;
	}
	case T_MergeStmt: {
		const MergeStmt *s = (const MergeStmt *)n;
		set_tag(w, "MERGE");
		raise_class(w, GW_SQL_WRITE);
		int saved = with_clause(w, s->withClause);
		target(w, s->relation);
		visit(w, s->sourceRelation);
		visit(w, s->joinCondition);
		const ListCell *lc;
		foreach(lc, s->mergeWhenClauses) {
			const MergeWhenClause *m = lfirst(lc);
			/*
			 * Guardrails are syntactic: MERGE always has its ON condition, so
			 * like DELETE ... WHERE true, MERGE ... ON true is an explicit choice.
			 */
			visit(w, m->condition);
			visit_list(w, m->targetList);
			visit_list(w, m->values);
		}
		w->nctes = saved;
		return;
	}
	case T_CopyStmt: {
		const CopyStmt *s = (const CopyStmt *)n;
		set_tag(w, "COPY");
		relation(w, s->relation);
		if (s->query)
			visit(w, s->query);
		visit(w, s->whereClause);
		if (s->filename) {
			raise_class(w, GW_SQL_ADMIN);
			if (s->is_program)
				w->st->flags |= GW_SQL_F_COPY_PROGRAM;
		} else if (s->is_from) {
			raise_class(w, GW_SQL_WRITE);
			w->st->flags |= GW_SQL_F_COPY_IN;
		}
		return;
	}
	case T_ExplainStmt: {
		const ExplainStmt *s = (const ExplainStmt *)n;
		set_tag(w, "EXPLAIN");
		bool analyze = false;
		const ListCell *lc;
		foreach(lc, s->options) {
			const DefElem *d = lfirst(lc);
			if (!strcmp(d->defname, "analyze") && !option_false(d->arg))
				analyze = true;
		}
		/*
		 * Plain EXPLAIN runs nothing: its class is its own, and the functions it
		 * names are not called. EXPLAIN ANALYZE runs the statement.
		 */
		walk inner = *w;
		enum gw_sql_class before = w->st->cls;
		size_t nfn = w->st->nfunctions, nfl = w->st->nfields;
		uint32_t flags_before = w->st->flags;
		statement(&inner, s->query);
		/* EXPLAIN EXECUTE p(args) evaluates args even without ANALYZE: that EXPLAIN keeps their class. */
		if (IsA(s->query, ExecuteStmt))
			analyze = true;
		if (!analyze && w->st->cls <= GW_SQL_WRITE && !(w->st->flags & GW_SQL_F_UNKNOWN)) {
			w->st->cls = before;
			/* nothing runs: no guardrail applies to what is only planned */
			w->st->flags = flags_before | (w->st->flags & (GW_SQL_F_OPAQUE | GW_SQL_F_PARSER_STATE));
			while (w->st->nfunctions > nfn)
				free(w->st->functions[--w->st->nfunctions]);
			while (w->st->nfields > nfl)
				free(w->st->fields[--w->st->nfields]);
		}
		return;
	}
	case T_DeclareCursorStmt:
		set_tag(w, "DECLARE CURSOR");
		statement(w, ((const DeclareCursorStmt *)n)->query);
		return;
	case T_FetchStmt:
		set_tag(w, ((const FetchStmt *)n)->ismove ? "MOVE" : "FETCH");
		return;
	case T_ClosePortalStmt:
		set_tag(w, "CLOSE CURSOR");
		return;
	case T_TransactionStmt: {
		const TransactionStmt *s = (const TransactionStmt *)n;
		set_tag(w, "TRANSACTION");
		const ListCell *lc;
		foreach(lc, s->options) {
			const DefElem *d = lfirst(lc);
			if (IsA(d, DefElem) && !strcmp(d->defname, "transaction_read_only") && d->arg &&
				sets_read_write(list_make1(d->arg)))
				w->st->flags |= GW_SQL_F_READ_WRITE;
		}
		if (s->kind == TRANS_STMT_PREPARE || s->kind == TRANS_STMT_COMMIT_PREPARED ||
			s->kind == TRANS_STMT_ROLLBACK_PREPARED)
			raise_class(w, GW_SQL_ADMIN);
		return;
	}
	case T_VariableSetStmt:
		variable_set(w, (const VariableSetStmt *)n);
		return;
	case T_VariableShowStmt:
		set_tag(w, "SHOW");
		return;
	case T_PrepareStmt:
		set_tag(w, "PREPARE");
		free(w->st->prepare_name);
		w->st->prepare_name = gw_xstrdup(((const PrepareStmt *)n)->name);
		statement(w, ((const PrepareStmt *)n)->query);
		return;
	case T_ExecuteStmt: {
		const ExecuteStmt *s = (const ExecuteStmt *)n;
		set_tag(w, "EXECUTE");
		w->st->flags |= GW_SQL_F_EXECUTE;
		free(w->st->execute_name);
		w->st->execute_name = gw_xstrdup(s->name);
		visit_list(w, s->params);
		return;
	}
	case T_DeallocateStmt: {
		const DeallocateStmt *d = (const DeallocateStmt *)n;
		set_tag(w, "DEALLOCATE");
		if (d->name) {
			free(w->st->deallocate_name);
			w->st->deallocate_name = gw_xstrdup(d->name);
		} else {
			w->st->flags |= GW_SQL_F_DEALLOCATE_ALL;
		}
		return;
	}
	case T_DiscardStmt:
		set_tag(w, "DISCARD");
		if (((const DiscardStmt *)n)->target == DISCARD_ALL)
			w->st->flags |= GW_SQL_F_SESSION_RESET;
		return;
	case T_ListenStmt:
		set_tag(w, "LISTEN");
		return;
	case T_UnlistenStmt:
		set_tag(w, "UNLISTEN");
		return;
	case T_NotifyStmt:
		set_tag(w, "NOTIFY");
		raise_class(w, GW_SQL_WRITE);
		return;
	case T_LockStmt:
		set_tag(w, "LOCK TABLE");
		raise_class(w, GW_SQL_WRITE);
		visit_list(w, ((const LockStmt *)n)->relations);
		return;
	case T_CreateTableAsStmt: {
		const CreateTableAsStmt *s = (const CreateTableAsStmt *)n;
		set_tag(w, "CREATE TABLE AS");
		raise_class(w, GW_SQL_DDL);
		if (s->into)
			relation(w, s->into->rel);
		statement(w, s->query);
		return;
	}
	case T_ViewStmt:
		set_tag(w, "CREATE VIEW");
		raise_class(w, GW_SQL_DDL);
		relation(w, ((const ViewStmt *)n)->view);
		statement(w, ((const ViewStmt *)n)->query);
		return;
	case T_TruncateStmt:
		set_tag(w, "TRUNCATE");
		raise_class(w, GW_SQL_DDL);
		w->st->flags |= GW_SQL_F_TRUNCATE;
		visit_list(w, ((const TruncateStmt *)n)->relations);
		return;
	case T_DropStmt: {
		const DropStmt *d = (const DropStmt *)n;
		set_tag(w, "DROP");
		raise_class(w, GW_SQL_DDL);
		w->st->flags |= GW_SQL_F_DROP;
		bool rel = d->removeType == OBJECT_TABLE || d->removeType == OBJECT_VIEW ||
			d->removeType == OBJECT_MATVIEW || d->removeType == OBJECT_SEQUENCE ||
			d->removeType == OBJECT_INDEX || d->removeType == OBJECT_FOREIGN_TABLE;
		const ListCell *lc;
		foreach(lc, d->objects) {
			const List *names = lfirst(lc);
			if (!rel || !IsA(names, List) || list_length(names) < 1 || list_length(names) > 3) {
				w->st->flags |= GW_SQL_F_OPAQUE;
				continue;
			}
			int k = list_length(names);
			add_name(&w->st->relations, &w->st->nrelations, strVal(list_nth(names, k >= 2 ? k - 2 : 0)),
				k >= 2 ? strVal(llast(names)) : NULL);
		}
		return;
	}
	case T_CreateStmt:
		set_tag(w, "CREATE TABLE");
		raise_class(w, GW_SQL_DDL);
		relation(w, ((const CreateStmt *)n)->relation);
		return;
	case T_AlterTableStmt:
		set_tag(w, "ALTER TABLE");
		raise_class(w, GW_SQL_DDL);
		relation(w, ((const AlterTableStmt *)n)->relation);
		return;
	case T_IndexStmt:
		set_tag(w, "CREATE INDEX");
		raise_class(w, GW_SQL_DDL);
		relation(w, ((const IndexStmt *)n)->relation);
		return;
	case T_CommentStmt: case T_RenameStmt: case T_CreateSeqStmt: case T_AlterSeqStmt:
	case T_CreateEnumStmt: case T_AlterEnumStmt: case T_CompositeTypeStmt: case T_CreateDomainStmt:
	case T_AlterDomainStmt: case T_CreateFunctionStmt: case T_AlterFunctionStmt: case T_RuleStmt:
	case T_CreateTrigStmt: case T_CreateSchemaStmt: case T_AlterObjectSchemaStmt: case T_AlterOwnerStmt:
	case T_GrantStmt: case T_CreateRangeStmt: case T_DefineStmt: case T_CreateStatsStmt:
	case T_AlterStatsStmt: case T_RefreshMatViewStmt:
	case T_CreatePolicyStmt: case T_AlterPolicyStmt: case T_AlterDefaultPrivilegesStmt:
		set_tag(w, "DDL");
		raise_class(w, GW_SQL_DDL);
		w->st->flags |= GW_SQL_F_OPAQUE;
		return;
	case T_AlterSystemStmt:
		set_tag(w, "ALTER SYSTEM");
		raise_class(w, GW_SQL_ADMIN);
		w->st->flags |= GW_SQL_F_ALTER_SYSTEM;
		return;
	case T_DropdbStmt: case T_DropRoleStmt: case T_DropTableSpaceStmt: case T_DropOwnedStmt:
		set_tag(w, "DROP");
		raise_class(w, GW_SQL_ADMIN);
		w->st->flags |= GW_SQL_F_DROP | GW_SQL_F_OPAQUE;
		return;
	case T_DoStmt: case T_CallStmt: case T_VacuumStmt: case T_ReindexStmt: case T_ClusterStmt:
	case T_CreateRoleStmt: case T_AlterRoleStmt:
	case T_AlterRoleSetStmt: case T_GrantRoleStmt: case T_CreatedbStmt:
	case T_AlterDatabaseStmt: case T_AlterDatabaseSetStmt: case T_LoadStmt:
	case T_CheckPointStmt: case T_CreateExtensionStmt: case T_AlterExtensionStmt:
	case T_CreateTableSpaceStmt: case T_CreateFdwStmt:
	case T_CreateForeignServerStmt: case T_CreateUserMappingStmt: case T_ImportForeignSchemaStmt:
	case T_CreateSubscriptionStmt: case T_CreatePublicationStmt: case T_CreateEventTrigStmt:
	case T_ReassignOwnedStmt: case T_SecLabelStmt: case T_ConstraintsSetStmt:
		set_tag(w, "ADMIN");
		raise_class(w, GW_SQL_ADMIN);
		w->st->flags |= GW_SQL_F_OPAQUE;
		return;
	default:
		set_tag(w, "UNKNOWN");
		unknown(w);
		return;
	}
}

static void visit(walk *w, const Node *n)
{
	if (!n)
		return;
	if (++w->depth > 500) {
		unknown(w); /* absurdly deep: refuse rather than recurse on */
		w->depth--;
		return;
	}
	switch (nodeTag(n)) {
	case T_List:
		visit_list(w, (const List *)n);
		break;
	case T_SelectStmt: case T_InsertStmt: case T_UpdateStmt: case T_DeleteStmt: case T_MergeStmt:
		statement(w, n); /* sub-selects and data-modifying CTEs */
		break;
	case T_RangeVar:
		relation(w, (const RangeVar *)n);
		break;
	case T_FuncCall:
		func_call(w, (const FuncCall *)n);
		break;
	case T_A_Expr: {
		const A_Expr *e = (const A_Expr *)n;
		if (e->kind == AEXPR_BETWEEN || e->kind == AEXPR_NOT_BETWEEN || e->kind == AEXPR_BETWEEN_SYM ||
			e->kind == AEXPR_NOT_BETWEEN_SYM) {
			add_name(&w->st->operators, &w->st->noperators, ">=", NULL);
			add_name(&w->st->operators, &w->st->noperators, "<=", NULL);
		} else {
			operator_name(w, e->name);
		}
		visit(w, e->lexpr);
		visit(w, e->rexpr);
		break;
	}
	case T_BoolExpr:
		visit_list(w, ((const BoolExpr *)n)->args);
		break;
	case T_TypeCast: {
		const TypeName *t = ((const TypeCast *)n)->typeName;
		if (t && list_length(t->names) && IsA(llast(t->names), String))
			add_name(&w->st->casts, &w->st->ncasts, strVal(llast(t->names)), NULL);
		visit(w, ((const TypeCast *)n)->arg);
		break;
	}
	case T_CollateClause:
		visit(w, ((const CollateClause *)n)->arg);
		break;
	case T_SubLink:
		operator_name(w, ((const SubLink *)n)->operName);
		visit(w, ((const SubLink *)n)->testexpr);
		visit(w, ((const SubLink *)n)->subselect);
		break;
	case T_CaseExpr:
		visit(w, (const Node *)((const CaseExpr *)n)->arg);
		visit_list(w, ((const CaseExpr *)n)->args);
		visit(w, (const Node *)((const CaseExpr *)n)->defresult);
		break;
	case T_CaseWhen:
		visit(w, (const Node *)((const CaseWhen *)n)->expr);
		visit(w, (const Node *)((const CaseWhen *)n)->result);
		break;
	case T_CoalesceExpr:
		visit_list(w, ((const CoalesceExpr *)n)->args);
		break;
	case T_MinMaxExpr:
		visit_list(w, ((const MinMaxExpr *)n)->args);
		break;
	case T_NullTest:
		visit(w, (const Node *)((const NullTest *)n)->arg);
		break;
	case T_BooleanTest:
		visit(w, (const Node *)((const BooleanTest *)n)->arg);
		break;
	case T_A_Indirection: {
		visit(w, ((const A_Indirection *)n)->arg);
		const ListCell *lc;
		foreach(lc, ((const A_Indirection *)n)->indirection) {
			const Node *i = lfirst(lc);
			if (IsA(i, String))
				field_name(w, strVal(i)); /* (expr).name may call name(expr) */
			else
				visit(w, i);
		}
		break;
	}
	case T_ColumnRef: {
		/* tbl.name may call name(tbl) when tbl has no column of that name */
		const List *f = ((const ColumnRef *)n)->fields;
		if (list_length(f) >= 2 && IsA(llast(f), String))
			field_name(w, strVal(llast(f)));
		break;
	}
	case T_A_Indices:
		visit(w, ((const A_Indices *)n)->lidx);
		visit(w, ((const A_Indices *)n)->uidx);
		break;
	case T_A_ArrayExpr:
		visit_list(w, ((const A_ArrayExpr *)n)->elements);
		break;
	case T_RowExpr:
		visit_list(w, ((const RowExpr *)n)->args);
		break;
	case T_ResTarget:
		visit(w, ((const ResTarget *)n)->val);
		visit_list(w, ((const ResTarget *)n)->indirection);
		break;
	case T_MultiAssignRef:
		visit(w, ((const MultiAssignRef *)n)->source);
		break;
	case T_SortBy:
		visit(w, ((const SortBy *)n)->node);
		break;
	case T_WindowDef:
		visit_list(w, ((const WindowDef *)n)->partitionClause);
		visit_list(w, ((const WindowDef *)n)->orderClause);
		visit(w, ((const WindowDef *)n)->startOffset);
		visit(w, ((const WindowDef *)n)->endOffset);
		break;
	case T_GroupingSet:
		visit_list(w, ((const GroupingSet *)n)->content);
		break;
	case T_RangeSubselect:
		visit(w, ((const RangeSubselect *)n)->subquery);
		break;
	case T_RangeFunction: {
		const ListCell *lc;
		foreach(lc, ((const RangeFunction *)n)->functions)
			visit(w, linitial((const List *)lfirst(lc))); /* (FuncCall, column defs) pairs */
		break;
	}
	case T_RangeTableSample:
		visit(w, ((const RangeTableSample *)n)->relation);
		visit_list(w, ((const RangeTableSample *)n)->args);
		visit(w, ((const RangeTableSample *)n)->repeatable);
		break;
	case T_RangeTableFunc:
		visit(w, ((const RangeTableFunc *)n)->docexpr);
		visit(w, ((const RangeTableFunc *)n)->rowexpr);
		visit_list(w, ((const RangeTableFunc *)n)->namespaces);
		visit_list(w, ((const RangeTableFunc *)n)->columns);
		break;
	case T_RangeTableFuncCol:
		visit(w, ((const RangeTableFuncCol *)n)->colexpr);
		visit(w, ((const RangeTableFuncCol *)n)->coldefexpr);
		break;
	case T_JoinExpr:
		visit(w, ((const JoinExpr *)n)->larg);
		visit(w, ((const JoinExpr *)n)->rarg);
		visit(w, ((const JoinExpr *)n)->quals);
		break;
	case T_WithClause:
		/* only reached outside a statement (not expected): scope ends here */
		w->nctes = with_clause(w, (const WithClause *)n);
		break;
	case T_CommonTableExpr:
		visit(w, ((const CommonTableExpr *)n)->ctequery);
		break;
	case T_XmlExpr:
		visit_list(w, ((const XmlExpr *)n)->named_args);
		visit_list(w, ((const XmlExpr *)n)->args);
		break;
	case T_XmlSerialize:
		visit(w, ((const XmlSerialize *)n)->expr);
		break;
	case T_IndexElem:
		visit(w, ((const IndexElem *)n)->expr);
		break;
	case T_GroupingFunc:
		visit_list(w, ((const GroupingFunc *)n)->args);
		break;
	case T_NamedArgExpr:
		visit(w, (const Node *)((const NamedArgExpr *)n)->arg);
		break;
	case T_A_Const: case T_ParamRef: case T_A_Star: case T_SQLValueFunction:
	case T_SetToDefault: case T_String: case T_Integer: case T_Float: case T_Boolean: case T_BitString:
	case T_TypeName: case T_CurrentOfExpr: case T_DefElem: case T_ColumnDef: case T_RoleSpec:
		break;
	default:
		unknown(w);
		break;
	}
	w->depth--;
}

int gw_sql_parse(const char *sql, gw_sql *out)
{
	memset(out, 0, sizeof(*out));
	MemoryContext ctx = pg_query_enter_memory_context();
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse(sql);
	int rc = 0;
	if (r.error) {
		snprintf(out->error, sizeof(out->error), "%s", r.error->message ? r.error->message : "syntax error");
		pg_query_free_error(r.error);
		rc = -1;
	} else {
		size_t n = (size_t)list_length(r.tree);
		out->stmts = gw_xcalloc(n ? n : 1, sizeof(gw_sql_stmt));
		const ListCell *lc;
		foreach(lc, r.tree) {
			const RawStmt *rs = lfirst_node(RawStmt, lc);
			walk w = {.st = &out->stmts[out->nstmts++]};
			size_t total = strlen(sql), loc = rs->stmt_location > 0 ? (size_t)rs->stmt_location : 0;
			if (loc > total)
				loc = total;
			w.st->loc = loc;
			w.st->len = rs->stmt_len > 0 && loc + (size_t)rs->stmt_len <= total ? (size_t)rs->stmt_len : total - loc;
			statement(&w, rs->stmt);
		}
	}
	free(r.stderr_buffer);
	pg_query_exit_memory_context(ctx);
	return rc;
}

char *gw_sql_normalize(const char *text, size_t len)
{
	char *tmp = gw_xmalloc(len + 1);
	memcpy(tmp, text, len);
	tmp[len] = 0;
	PgQueryNormalizeResult r = pg_query_normalize(tmp);
	free(tmp);
	char *out = !r.error && r.normalized_query ? gw_xstrdup(r.normalized_query) : NULL;
	pg_query_free_normalize_result(r);
	return out;
}

static bool ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* FNV-1a, 64 bits: stable across builds and platforms (the fingerprint is stored in the record). */
static void fp_add(uint64_t *h, unsigned char c)
{
	*h = (*h ^ c) * 0x100000001b3ull;
}

void gw_sql_fingerprint(const char *text, size_t len, char out[17])
{
	const unsigned char *t = (const unsigned char *)text;
	uint64_t h = 0xcbf29ce484222325ull;
	bool lit = false; /* the last token was a literal */
	size_t i = 0;
	while (i < len) {
		unsigned char c = t[i];
		if (isspace(c)) {
			i++;
			continue;
		}
		if (c == '-' && i + 1 < len && t[i + 1] == '-') {
			while (i < len && t[i] != '\n')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < len && t[i + 1] == '*') {
			int depth = 0;
			do {
				if (i + 1 < len && t[i] == '/' && t[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (i + 1 < len && t[i] == '*' && t[i + 1] == '/') {
					depth--;
					i += 2;
				} else {
					i++;
				}
			} while (i < len && depth > 0);
			continue;
		}
		/* a literal: 'x' (and E'', B'', X'', N'', U&''), a dollar-quoted body, a number */
		bool is_lit = false;
		size_t q = i;
		if ((c == 'e' || c == 'E' || c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') &&
			i + 1 < len && t[i + 1] == '\'' && (i == 0 || !ident_char(t[i - 1])))
			q = i + 1;
		else if ((c == 'u' || c == 'U') && i + 2 < len && t[i + 1] == '&' && t[i + 2] == '\'' &&
			(i == 0 || !ident_char(t[i - 1])))
			q = i + 2;
		if (t[q] == '\'') {
			bool esc = q > i && (t[i] == 'e' || t[i] == 'E');
			i = q + 1;
			while (i < len) {
				if (esc && t[i] == '\\' && i + 1 < len) {
					i += 2;
				} else if (t[i] == '\'') {
					if (i + 1 < len && t[i + 1] == '\'') {
						i += 2;
					} else {
						i++;
						break;
					}
				} else {
					i++;
				}
			}
			is_lit = true;
		} else if (c == '$' && (i == 0 || !ident_char(t[i - 1])) && i + 1 < len && !isdigit(t[i + 1])) {
			size_t e = i + 1;
			while (e < len && (isalnum(t[e]) || t[e] == '_' || t[e] >= 0x80))
				e++;
			if (e < len && t[e] == '$') {
				size_t taglen = e + 1 - i;
				size_t k = e + 1;
				while (k + taglen <= len && memcmp(t + k, t + i, taglen) != 0)
					k++;
				i = k + taglen <= len ? k + taglen : len;
				is_lit = true;
			}
		} else if ((isdigit(c) || (c == '.' && i + 1 < len && isdigit(t[i + 1]))) &&
			(i == 0 || !ident_char(t[i - 1]))) {
			while (i < len && (isalnum(t[i]) || t[i] == '.' || t[i] == '_' ||
				((t[i] == '+' || t[i] == '-') && (t[i - 1] == 'e' || t[i - 1] == 'E'))))
				i++;
			is_lit = true;
		}
		/* every token starts with a separator; blanks and comments between tokens do not count */
		if (is_lit) {
			if (!lit) { /* adjacent literals ('a' 'b', continued strings) count as one */
				fp_add(&h, 1);
				fp_add(&h, '?');
			}
			lit = true;
			continue;
		}
		lit = false;
		fp_add(&h, 1);
		if (c == '"') {
			/* a quoted name: as written */
			fp_add(&h, c);
			for (i++; i < len; i++) {
				fp_add(&h, t[i]);
				if (t[i] == '"') {
					if (i + 1 < len && t[i + 1] == '"') {
						fp_add(&h, t[++i]);
						continue;
					}
					i++;
					break;
				}
			}
			continue;
		}
		if (ident_char(c)) {
			while (i < len && ident_char(t[i]))
				fp_add(&h, (unsigned char)tolower(t[i++]));
			continue;
		}
		fp_add(&h, c);
		i++;
	}
	static const char hx[] = "0123456789abcdef";
	for (int k = 0; k < 16; k++)
		out[k] = hx[(h >> (60 - 4 * k)) & 15];
	out[16] = 0;
}

void gw_sql_free(gw_sql *s)
{
	for (size_t i = 0; i < s->nstmts; i++) {
		gw_sql_stmt *st = &s->stmts[i];
		for (size_t j = 0; j < st->nrelations; j++)
			free(st->relations[j]);
		for (size_t j = 0; j < st->nfunctions; j++)
			free(st->functions[j]);
		free(st->relations);
		free(st->functions);
		free(st->execute_name);
		free(st->prepare_name);
		free(st->deallocate_name);
		for (size_t j = 0; j < st->nfields; j++)
			free(st->fields[j]);
		free(st->fields);
		for (size_t j = 0; j < st->noperators; j++)
			free(st->operators[j]);
		free(st->operators);
		for (size_t j = 0; j < st->ncasts; j++)
			free(st->casts[j]);
		free(st->casts);
	}
	free(s->stmts);
	memset(s, 0, sizeof(*s));
}

const char *gw_sql_class_str(enum gw_sql_class c)
{
	static const char *const names[] = {"read", "write", "ddl", "admin"};
	return names[c];
}

enum gw_sql_class gw_sql_max_class(const gw_sql *s)
{
	enum gw_sql_class c = GW_SQL_READ;
	for (size_t i = 0; i < s->nstmts; i++)
		if (s->stmts[i].cls > c)
			c = s->stmts[i].cls;
	return c;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Output columns and masked columns: gw_sql_mask_columns (see sqlparse.h).
 *
 * A second walk of the raw tree, modelled on PostgreSQL's parse analysis
 * (parse_clause.c, parse_relation.c, parse_target.c): each query level has a
 * namespace of FROM items (ParseNamespaceItem: visible by name and/or for
 * unqualified columns, LATERAL-only while the FROM list is being read); a
 * column reference resolves to the innermost level that has it. Every column
 * carries a verdict; an expression's verdict is the worst of the columns it
 * references. A FROM item whose columns are not known is a "run" of columns
 * (count and names unknown): a reference that may land in it takes its
 * verdict, a star over it cannot be mapped.
 *
 * Verdicts are ordered CLEAR < UNDECIDED < MASKED: an expression that reads a
 * masked column is masked, whatever else it reads. Everything is allocated in
 * libpg_query's memory context and freed with it.
 * --------------------------------------------------------------------------------------------------------------- */

#include <stdarg.h>

enum { R_CLEAR = 0, R_UND = 1, R_MASK = 2 };

#define M_MAX_DEPTH 200        /* nested expressions / queries / FROM items */
#define M_MAX_WORK 20000000L   /* nodes visited and columns compared (recursive CTEs are analysed again) */
#define M_MAX_CELLS 1000000L   /* column entries built (stars over joins of joins multiply) */
#define M_MAX_ROUNDS 8         /* rounds of a recursive CTE before its columns are taken as masked */

/* A value that is exactly one catalog column's, as stored (what a write may copy into a column masked alike). */
typedef struct msrc {
	const char *schema, *rel, *col;
} msrc;

typedef struct vd {
	uint8_t r;
	const char *why;           /* with R_UND: why */
	const msrc *src;           /* with R_MASK: the value is this column's as it is (NULL: derived or several) */
} vd;

static const vd V_CLEAR = {R_CLEAR, NULL, NULL};

static bool src_same(const msrc *a, const msrc *b)
{
	if (a == b)
		return true;
	if (!a || !b || strcmp(a->rel, b->rel) || strcmp(a->col, b->col))
		return false;
	return a->schema && b->schema ? !strcmp(a->schema, b->schema) : a->schema == b->schema;
}

static vd vjoin(vd a, vd b)
{
	vd r = b.r > a.r || (b.r == a.r && !a.why && b.why) ? b : a;
	/* one of two values: still that column's only when every masked part is the same column (clear parts are not) */
	if (a.r != R_CLEAR && b.r != R_CLEAR && !src_same(a.src, b.src))
		r.src = NULL;
	return r;
}

static vd derived(vd v)
{
	v.src = NULL;
	return v;
}

typedef struct mcol {
	const char *name;          /* NULL: a run of columns whose number and names are unknown */
	vd v;
	const char *what;          /* with name NULL: what the run is (the reason a star over it fails) */
	bool anyname;              /* one column whose name is not known: any name may match it */
	bool noexpand;             /* SEARCH / CYCLE column of an outer level's CTE: not in a star */
} mcol;

typedef struct mcols {
	mcol *c;
	int n, cap;
} mcols;

typedef struct mitem {
	const char *refname;       /* the name it is visible by (alias, relation, CTE, function) */
	const char *relname;       /* catalog relation without alias: matched by schema.rel.col too */
	const char *schema;
	bool plain_rel;            /* catalog relation without alias */
	bool is_rel;               /* catalog relation: has system columns */
	bool rel_visible, cols_visible, lateral_only;
	mcols cols;
} mitem;

typedef struct mcte {
	const CommonTableExpr *cte;
	int state;                 /* 0 not analysed, 1 being analysed, 2 done */
	bool have;                 /* res holds its columns (while state 1: the approximation so far) */
	mcols res;                 /* after the CTE's column aliases, without SEARCH / CYCLE columns */
} mcte;

struct mlevel;

typedef struct mwith {
	mcte *e;
	int n;
	bool recursive;
	struct mlevel *outer;      /* the level around the statement that owns the WITH */
} mwith;

typedef struct mlevel {
	struct mlevel *up;
	mitem **ns;
	int nns, cap;
	bool lateral_active;       /* reading a LATERAL item: this level's LATERAL-only items are visible */
	mwith *with;
	int with_visible;          /* CTEs with[0..with_visible) are in scope */
	const List *windows;       /* WINDOW clause of the SELECT at this level */
} mlevel;

typedef struct mctx {
	const gw_sql_catalog *cat;
	int depth;
	long work, cells;
	bool failed;
	bool refused;              /* gw_sql_mask_writes: a masked value would leave (why says where) */
	char why[256];
} mctx;

static void mfail(mctx *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mfail(mctx *m, const char *fmt, ...)
{
	if (m->failed)
		return;
	m->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
}

static const char *mstr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *mstr(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return pstrdup(buf);
}

static vd und(const char *why)
{
	return (vd){R_UND, why};
}

static bool enter(mctx *m)
{
	if (m->failed)
		return false;
	if (++m->work > M_MAX_WORK) {
		mfail(m, "statement too large to analyse");
		return false;
	}
	if (m->depth >= M_MAX_DEPTH) {
		mfail(m, "statement nested too deeply to analyse");
		return false;
	}
	m->depth++;
	return true;
}

static void leave(mctx *m)
{
	m->depth--;
}

static void push(mctx *m, mcols *c, mcol x)
{
	if (m->failed)
		return;
	if (++m->cells > M_MAX_CELLS) {
		mfail(m, "statement too large to analyse");
		return;
	}
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 8;
		c->c = c->c ? repalloc(c->c, (size_t)cap * sizeof(mcol)) : palloc((size_t)cap * sizeof(mcol));
		c->cap = cap;
	}
	c->c[c->n++] = x;
}

/* A run of unknown columns. */
static void push_run(mctx *m, mcols *c, vd v, const char *what)
{
	push(m, c, (mcol){.name = NULL, .v = v, .what = what});
}

static vd cols_worst(const mcols *c)
{
	vd v = V_CLEAR;
	for (int i = 0; i < c->n; i++)
		v = vjoin(v, c->c[i].v);
	return derived(v); /* a row, or one of several columns: not any one column's value */
}

/* The whole row of an item (c, c.*, row_to_json(c)): the worst of its columns. */
static vd whole_row(mctx *m, const mitem *it)
{
	m->work += it->cols.n;
	return cols_worst(&it->cols);
}

static bool cols_have_run(const mcols *c)
{
	for (int i = 0; i < c->n; i++)
		if (!c->c[i].name)
			return true;
	return false;
}

/*
 * c renamed positionally by an alias column list (AS x(a, b)): names beyond
 * the columns are kept. Names that fall on a run of unknown columns become
 * columns with the run's verdict, ahead of it. Always a copy.
 */
static mcols cols_rename(mctx *m, const mcols *c, const List *names)
{
	mcols out = {0};
	int i = 0;
	const ListCell *lc;
	foreach(lc, names) {
		const Node *s = lfirst(lc);
		const char *name = IsA(s, String) ? strVal(s) : "?";
		if (i < c->n && c->c[i].name) {
			mcol x = c->c[i++];
			x.name = name;
			x.anyname = false;
			push(m, &out, x);
		} else if (i < c->n) {
			push(m, &out, (mcol){.name = name, .v = c->c[i].v});
		} else {
			push(m, &out, (mcol){.name = name, .v = und("more column aliases than columns")});
		}
	}
	for (; i < c->n; i++)
		push(m, &out, c->c[i]);
	return out;
}

static mitem *item_new(void)
{
	mitem *it = palloc0(sizeof(mitem));
	it->rel_visible = it->cols_visible = true;
	return it;
}

static void ns_add(mlevel *L, mitem *it)
{
	if (L->nns == L->cap) {
		int cap = L->cap ? L->cap * 2 : 8;
		L->ns = L->ns ? repalloc(L->ns, (size_t)cap * sizeof(mitem *)) : palloc((size_t)cap * sizeof(mitem *));
		L->cap = cap;
	}
	it->lateral_only = true; /* until the FROM list is done */
	L->ns[L->nns++] = it;
}

static bool item_seen(const mlevel *l, const mitem *it)
{
	return !it->lateral_only || l->lateral_active;
}

static bool system_column(const char *s)
{
	return !strcmp(s, "ctid") || !strcmp(s, "xmin") || !strcmp(s, "xmax") || !strcmp(s, "cmin") ||
		!strcmp(s, "cmax") || !strcmp(s, "tableoid");
}

/*
 * Column name of one item: 2 a known column (or system column, with sys),
 * 1 only possibly (a run or a column of unknown name), 0 none. *v: its verdict.
 */
static int item_col(mctx *m, const mitem *it, const char *name, bool sys, vd *v)
{
	m->work += it->cols.n;
	vd k = V_CLEAR, p = V_CLEAR;
	bool known = false, maybe = false;
	for (int i = 0; i < it->cols.n; i++) {
		const mcol *c = &it->cols.c[i];
		if (c->name && !c->anyname) {
			if (!strcmp(c->name, name)) {
				k = vjoin(k, c->v);
				known = true;
			}
		} else {
			p = vjoin(p, c->v);
			maybe = true;
		}
	}
	if (known) {
		*v = k;
		return 2;
	}
	if (sys && it->is_rel && system_column(name)) {
		*v = V_CLEAR; /* user columns cannot take these names */
		return 2;
	}
	if (maybe) {
		*v = p;
		return 1;
	}
	return 0;
}

/*
 * An unqualified column name (colNameToVar): the innermost level where an
 * item has it. Runs of unknown columns on the way may hold it: their verdicts
 * count too. At the level of a known match other items' runs do not (if they
 * held the name, the reference would be ambiguous: an error, no rows).
 */
static int lookup_col(mctx *m, mlevel *L, const char *name, vd *out)
{
	vd acc = V_CLEAR;
	bool maybe = false;
	for (mlevel *l = L; l; l = l->up) {
		vd k = V_CLEAR, p = V_CLEAR;
		bool known = false, lmaybe = false;
		for (int i = 0; i < l->nns; i++) {
			const mitem *it = l->ns[i];
			if (!it->cols_visible || !item_seen(l, it))
				continue;
			vd v;
			int r = item_col(m, it, name, true, &v);
			if (r == 2) {
				k = vjoin(k, v);
				known = true;
			} else if (r == 1) {
				p = vjoin(p, v);
				lmaybe = true;
			}
		}
		if (known) {
			*out = vjoin(acc, k);
			return 2;
		}
		if (lmaybe) {
			acc = vjoin(acc, p);
			maybe = true;
		}
	}
	*out = acc;
	return maybe ? 1 : 0;
}

/*
 * The FROM items a (possibly schema-qualified) name denotes
 * (refnameNamespaceItem): those of the innermost level with a match.
 * schema.rel matches an unaliased relation item; one written without a
 * schema may be another relation of the same name, so the search goes on
 * outward (both count).
 */
static int lookup_rel(mctx *m, mlevel *L, const char *schema, const char *name, mitem **out, int max)
{
	int n = 0;
	for (mlevel *l = L; l; l = l->up) {
		m->work += l->nns;
		bool certain = false;
		for (int i = 0; i < l->nns; i++) {
			mitem *it = l->ns[i];
			if (!it->rel_visible || !item_seen(l, it))
				continue;
			bool sure = true;
			if (!schema) {
				if (!it->refname || strcmp(it->refname, name))
					continue;
			} else {
				if (!it->plain_rel || strcmp(it->relname, name) || (it->schema && strcmp(it->schema, schema)))
					continue;
				sure = it->schema != NULL;
			}
			if (n < max)
				out[n++] = it;
			if (sure)
				certain = true;
		}
		if (certain)
			break;
	}
	return n;
}

static vd expr_v(mctx *m, mlevel *L, const Node *n);
static int query_cols(mctx *m, mlevel *parent, const Node *q, mcols *out);

static vd list_v(mctx *m, mlevel *L, const List *l)
{
	vd v = V_CLEAR;
	const ListCell *lc;
	foreach(lc, l)
		v = vjoin(v, expr_v(m, L, lfirst(lc)));
	return v;
}

/*
 * A ColumnRef inside an expression (transformColumnRef). *whole gets the item
 * when the reference is certainly the whole row of one FROM item.
 */
static vd colref_v(mctx *m, mlevel *L, const ColumnRef *cr, mitem **whole)
{
	if (whole)
		*whole = NULL;
	int n = list_length(cr->fields);
	const char *f[4] = {0};
	bool star = false;
	if (n < 1 || n > 4)
		return und("a column reference with too many names");
	for (int i = 0; i < n; i++) {
		const Node *x = list_nth(cr->fields, i);
		if (IsA(x, A_Star) && i == n - 1)
			star = true;
		else if (IsA(x, String))
			f[i] = strVal(x);
		else
			return und("a column reference not understood");
	}
	mitem *items[8];
	if (n == 1) {
		if (star)
			return und("* inside an expression");
		/* a column if any level has one, else the whole row of an item: take both */
		vd v = V_CLEAR;
		int r = lookup_col(m, L, f[0], &v);
		int k = lookup_rel(m, L, NULL, f[0], items, 8);
		for (int i = 0; i < k; i++)
			v = vjoin(v, whole_row(m, items[i]));
		if (!r && !k)
			return und(mstr("column %s not found", f[0]));
		if (!r && k == 1 && whole)
			*whole = items[0];
		return v;
	}
	const char *schema = n >= 3 ? f[n - 3] : NULL, *rel = f[n - 2], *col = f[n - 1];
	int k = lookup_rel(m, L, schema, rel, items, 8);
	if (!k)
		return und(mstr("no FROM item named %s", rel));
	vd v = V_CLEAR;
	for (int i = 0; i < k; i++) {
		vd c;
		if (!star && item_col(m, items[i], col, true, &c) == 2)
			v = vjoin(v, c);
		else
			v = vjoin(v, whole_row(m, items[i])); /* rel.*, or col(rel): a function of the whole row */
	}
	if (star && k == 1 && whole)
		*whole = items[0];
	return v;
}

/* Functions that read a table or run a query named by their arguments: their result is not decided by the walk. */
static bool reads_tables(const char *name)
{
	static const char *const pre[] = {"query_to_xml", "table_to_xml", "cursor_to_xml", "schema_to_xml",
		"database_to_xml", "ts_stat", "ts_rewrite", "dblink"};
	for (size_t i = 0; i < GW_ARRAY_LEN(pre); i++)
		if (!strncmp(name, pre[i], strlen(pre[i])))
			return true;
	return false;
}

static vd window_v(mctx *m, mlevel *L, const WindowDef *w, bool named)
{
	vd v = vjoin(list_v(m, L, w->partitionClause), list_v(m, L, w->orderClause));
	v = vjoin(v, vjoin(expr_v(m, L, w->startOffset), expr_v(m, L, w->endOffset)));
	if (named && (w->name || w->refname)) {
		/* OVER w / OVER (w ...): the WINDOW clause's definitions count too */
		const ListCell *lc;
		foreach(lc, L->windows)
			if (IsA(lfirst(lc), WindowDef))
				v = vjoin(v, window_v(m, L, lfirst(lc), false));
	}
	return v;
}

/* Code defined in the database runs here (a user's function, operator, cast): its result may come from anywhere. */
static vd user_code_v(mctx *m, int kind, const List *names)
{
	const Node *last = list_length(names) ? llast(names) : NULL;
	if (!last || !IsA(last, String) || !m->cat || !m->cat->user_code || !m->cat->user_code(m->cat->ud, kind,
			strVal(last)))
		return V_CLEAR;
	const char *name = strVal(last);
	if (kind == GW_SQL_CODE_FUNCTION)
		return und(mstr("function %s() is defined in the database: what it returns may come from anywhere", name));
	if (kind == GW_SQL_CODE_OPERATOR)
		return und(mstr("operator %s runs a function defined in the database", name));
	return und(mstr("a cast to %s runs a function defined in the database", name));
}

static vd func_v(mctx *m, mlevel *L, const FuncCall *fc)
{
	vd v = user_code_v(m, GW_SQL_CODE_FUNCTION, fc->funcname);
	const Node *last = list_length(fc->funcname) ? llast(fc->funcname) : NULL;
	if (last && IsA(last, String) && reads_tables(strVal(last)))
		v = und(mstr("%s() reads tables named in its arguments", strVal(last)));
	v = vjoin(v, list_v(m, L, fc->args));
	v = vjoin(v, list_v(m, L, fc->agg_order));
	v = vjoin(v, expr_v(m, L, fc->agg_filter));
	if (fc->over)
		v = vjoin(v, window_v(m, L, fc->over, true));
	return v;
}

static vd expr_v(mctx *m, mlevel *L, const Node *n)
{
	if (!n)
		return V_CLEAR;
	if (!enter(m))
		return und("not analysed");
	vd v = V_CLEAR;
	switch (nodeTag(n)) {
	case T_ColumnRef:
		v = colref_v(m, L, (const ColumnRef *)n, NULL);
		break;
	case T_A_Const: case T_ParamRef: case T_SQLValueFunction: case T_SetToDefault: case T_CurrentOfExpr:
	case T_String: case T_Integer: case T_Float: case T_Boolean: case T_BitString: case T_TypeName:
		break;
	case T_List:
		v = list_v(m, L, (const List *)n);
		break;
	case T_FuncCall:
		v = func_v(m, L, (const FuncCall *)n);
		break;
	case T_A_Expr: {
		/* a || b || c ... is a left-deep chain: walk its spine without recursing */
		const A_Expr *e = (const A_Expr *)n;
		for (;;) {
			v = vjoin(v, user_code_v(m, GW_SQL_CODE_OPERATOR, e->name));
			v = vjoin(v, expr_v(m, L, e->rexpr));
			if (e->lexpr && IsA(e->lexpr, A_Expr) && !m->failed) {
				e = (const A_Expr *)e->lexpr;
				m->work++;
				continue;
			}
			v = vjoin(v, expr_v(m, L, e->lexpr));
			break;
		}
		break;
	}
	case T_BoolExpr:
		v = list_v(m, L, ((const BoolExpr *)n)->args);
		break;
	case T_TypeCast: {
		const TypeName *t = ((const TypeCast *)n)->typeName;
		v = vjoin(t ? user_code_v(m, GW_SQL_CODE_CAST, t->names) : V_CLEAR, expr_v(m, L, ((const TypeCast *)n)->arg));
		break;
	}
	case T_CollateClause:
		v = expr_v(m, L, ((const CollateClause *)n)->arg);
		break;
	case T_SubLink: {
		/* scalar, ARRAY, EXISTS, IN / ANY / ALL: the sub-query's output columns count */
		const SubLink *s = (const SubLink *)n;
		v = vjoin(user_code_v(m, GW_SQL_CODE_OPERATOR, s->operName), expr_v(m, L, s->testexpr));
		mcols c = {0};
		if (query_cols(m, L, s->subselect, &c) > 0)
			v = vjoin(v, cols_worst(&c));
		break;
	}
	case T_CaseExpr: {
		const CaseExpr *c = (const CaseExpr *)n;
		v = vjoin(expr_v(m, L, (const Node *)c->arg), list_v(m, L, c->args));
		v = vjoin(v, expr_v(m, L, (const Node *)c->defresult));
		break;
	}
	case T_CaseWhen: /* the condition counts: CASE WHEN ssn LIKE '1%' THEN 1 END says something about ssn */
		v = vjoin(expr_v(m, L, (const Node *)((const CaseWhen *)n)->expr),
			expr_v(m, L, (const Node *)((const CaseWhen *)n)->result));
		break;
	case T_CoalesceExpr:
		v = list_v(m, L, ((const CoalesceExpr *)n)->args);
		break;
	case T_MinMaxExpr:
		v = list_v(m, L, ((const MinMaxExpr *)n)->args);
		break;
	case T_NullTest:
		v = expr_v(m, L, (const Node *)((const NullTest *)n)->arg);
		break;
	case T_BooleanTest:
		v = expr_v(m, L, (const Node *)((const BooleanTest *)n)->arg);
		break;
	case T_A_Indirection: {
		/* (c).email of a whole-row c is c's column email; anything else: the whole value */
		const A_Indirection *ai = (const A_Indirection *)n;
		mitem *it = NULL;
		if (ai->arg && IsA(ai->arg, ColumnRef))
			v = colref_v(m, L, (const ColumnRef *)ai->arg, &it);
		else
			v = expr_v(m, L, ai->arg);
		const Node *first = list_length(ai->indirection) ? linitial(ai->indirection) : NULL;
		vd c;
		if (it && first && IsA(first, String) && item_col(m, it, strVal(first), false, &c) == 2)
			v = c;
		const ListCell *lc;
		foreach(lc, ai->indirection) {
			const Node *x = lfirst(lc);
			if (!IsA(x, String) && !IsA(x, A_Star))
				v = vjoin(v, expr_v(m, L, x));
		}
		break;
	}
	case T_A_Indices:
		v = vjoin(expr_v(m, L, ((const A_Indices *)n)->lidx), expr_v(m, L, ((const A_Indices *)n)->uidx));
		break;
	case T_A_ArrayExpr:
		v = list_v(m, L, ((const A_ArrayExpr *)n)->elements);
		break;
	case T_RowExpr:
		v = list_v(m, L, ((const RowExpr *)n)->args);
		break;
	case T_XmlExpr:
		v = vjoin(list_v(m, L, ((const XmlExpr *)n)->named_args), list_v(m, L, ((const XmlExpr *)n)->args));
		break;
	case T_XmlSerialize:
		v = expr_v(m, L, ((const XmlSerialize *)n)->expr);
		break;
	case T_GroupingFunc:
		v = list_v(m, L, ((const GroupingFunc *)n)->args);
		break;
	case T_NamedArgExpr:
		v = expr_v(m, L, (const Node *)((const NamedArgExpr *)n)->arg);
		break;
	case T_ResTarget:
		v = expr_v(m, L, ((const ResTarget *)n)->val);
		break;
	case T_SortBy:
		v = expr_v(m, L, ((const SortBy *)n)->node);
		break;
	case T_WindowDef:
		v = window_v(m, L, (const WindowDef *)n, false);
		break;
	case T_MultiAssignRef:
		v = expr_v(m, L, ((const MultiAssignRef *)n)->source);
		break;
	default:
		v = und(mstr("expression node %d not analysed", (int)nodeTag(n)));
		break;
	}
	leave(m);
	/* only a plain column reference (or a target naming one) is that column's value as it is */
	if (!IsA(n, ColumnRef) && !IsA(n, ResTarget))
		v = derived(v);
	return v;
}

/* ---- output column names (FigureColname) ---- */

static const char *leftmost_target_name(const Node *q, bool *sure, int depth);

static int figure(const Node *n, const char **name, bool *sure, int depth)
{
	if (!n)
		return 0;
	if (depth > 64) {
		*sure = false;
		return 0;
	}
	switch (nodeTag(n)) {
	case T_ColumnRef: {
		const char *f = NULL;
		const ListCell *lc;
		foreach(lc, ((const ColumnRef *)n)->fields)
			if (IsA(lfirst(lc), String))
				f = strVal(lfirst(lc));
		if (f) {
			*name = f;
			return 2;
		}
		break;
	}
	case T_A_Indirection: {
		const char *f = NULL;
		const ListCell *lc;
		foreach(lc, ((const A_Indirection *)n)->indirection)
			if (IsA(lfirst(lc), String))
				f = strVal(lfirst(lc));
		if (f) {
			*name = f;
			return 2;
		}
		return figure(((const A_Indirection *)n)->arg, name, sure, depth + 1);
	}
	case T_FuncCall: {
		const Node *last = llast(((const FuncCall *)n)->funcname);
		if (IsA(last, String)) {
			*name = strVal(last);
			return 2;
		}
		*sure = false;
		break;
	}
	case T_A_Expr:
		if (((const A_Expr *)n)->kind == AEXPR_NULLIF) {
			*name = "nullif";
			return 2;
		}
		break;
	case T_TypeCast: {
		const TypeCast *t = (const TypeCast *)n;
		int s = figure(t->arg, name, sure, depth + 1);
		if (s <= 1 && t->typeName && list_length(t->typeName->names) && IsA(llast(t->typeName->names), String)) {
			*name = strVal(llast(t->typeName->names));
			return 1;
		}
		return s;
	}
	case T_CollateClause:
		return figure(((const CollateClause *)n)->arg, name, sure, depth + 1);
	case T_GroupingFunc:
		*name = "grouping";
		return 2;
	case T_SubLink: {
		const SubLink *s = (const SubLink *)n;
		if (s->subLinkType == EXISTS_SUBLINK) {
			*name = "exists";
			return 2;
		}
		if (s->subLinkType == ARRAY_SUBLINK) {
			*name = "array";
			return 2;
		}
		if (s->subLinkType == EXPR_SUBLINK) {
			*name = leftmost_target_name(s->subselect, sure, depth + 1);
			return 2;
		}
		break;
	}
	case T_CaseExpr: {
		int s = figure((const Node *)((const CaseExpr *)n)->defresult, name, sure, depth + 1);
		if (s <= 1) {
			*name = "case";
			return 1;
		}
		return s;
	}
	case T_A_ArrayExpr:
		*name = "array";
		return 2;
	case T_RowExpr:
		*name = "row";
		return 2;
	case T_CoalesceExpr:
		*name = "coalesce";
		return 2;
	case T_MinMaxExpr:
		*name = ((const MinMaxExpr *)n)->op == IS_GREATEST ? "greatest" : "least";
		return 2;
	case T_SQLValueFunction: {
		static const char *const names[] = {
			[SVFOP_CURRENT_DATE] = "current_date", [SVFOP_CURRENT_TIME] = "current_time",
			[SVFOP_CURRENT_TIME_N] = "current_time", [SVFOP_CURRENT_TIMESTAMP] = "current_timestamp",
			[SVFOP_CURRENT_TIMESTAMP_N] = "current_timestamp", [SVFOP_LOCALTIME] = "localtime",
			[SVFOP_LOCALTIME_N] = "localtime", [SVFOP_LOCALTIMESTAMP] = "localtimestamp",
			[SVFOP_LOCALTIMESTAMP_N] = "localtimestamp", [SVFOP_CURRENT_ROLE] = "current_role",
			[SVFOP_CURRENT_USER] = "current_user", [SVFOP_USER] = "user", [SVFOP_SESSION_USER] = "session_user",
			[SVFOP_CURRENT_CATALOG] = "current_catalog", [SVFOP_CURRENT_SCHEMA] = "current_schema",
		};
		unsigned op = (unsigned)((const SQLValueFunction *)n)->op;
		if (op < GW_ARRAY_LEN(names) && names[op]) {
			*name = names[op];
			return 2;
		}
		*sure = false;
		break;
	}
	case T_XmlExpr: {
		static const char *const names[] = {
			[IS_XMLCONCAT] = "xmlconcat", [IS_XMLELEMENT] = "xmlelement", [IS_XMLFOREST] = "xmlforest",
			[IS_XMLPARSE] = "xmlparse", [IS_XMLPI] = "xmlpi", [IS_XMLROOT] = "xmlroot",
			[IS_XMLSERIALIZE] = "xmlserialize", [IS_DOCUMENT] = NULL,
		};
		unsigned op = (unsigned)((const XmlExpr *)n)->op;
		if (op < GW_ARRAY_LEN(names) && names[op]) {
			*name = names[op];
			return 2;
		}
		break;
	}
	case T_XmlSerialize:
		*name = "xmlserialize";
		return 2;
	default:
		break;
	}
	return 0;
}

static const char *colname(const Node *n, bool *sure, int depth)
{
	const char *name = "?column?";
	if (!figure(n, &name, sure, depth))
		name = "?column?";
	return name;
}

/* The name of the first output column of a sub-query (a scalar sub-query's column is named after it). */
static const char *leftmost_target_name(const Node *q, bool *sure, int depth)
{
	while (q && IsA(q, SelectStmt) && ((const SelectStmt *)q)->op != SETOP_NONE)
		q = (const Node *)((const SelectStmt *)q)->larg;
	if (!q || !IsA(q, SelectStmt)) {
		*sure = false;
		return "?column?";
	}
	const SelectStmt *s = (const SelectStmt *)q;
	if (s->valuesLists)
		return "column1";
	if (!list_length(s->targetList)) {
		*sure = false;
		return "?column?";
	}
	const ResTarget *rt = linitial(s->targetList);
	if (rt->name)
		return rt->name;
	if (rt->val && IsA(rt->val, ColumnRef) && IsA(llast(((const ColumnRef *)rt->val)->fields), A_Star)) {
		*sure = false; /* the first column of a star */
		return "?column?";
	}
	return colname(rt->val, sure, depth + 1);
}

/* ---- FROM items ---- */

static void eval_cte(mctx *m, mwith *w, int idx);

static bool find_cte(mlevel *L, const char *name, mwith **w, int *idx, int *hops)
{
	int h = 0;
	for (mlevel *l = L; l; l = l->up, h++) {
		if (!l->with)
			continue;
		for (int i = l->with_visible - 1; i >= 0; i--)
			if (!strcmp(l->with->e[i].cte->ctename, name)) {
				*w = l->with;
				*idx = i;
				*hops = h;
				return true;
			}
	}
	return false;
}

/* A reference to CTE w->e[idx] (addRangeTableEntryForCTE). */
static void cte_item(mctx *m, mitem *it, mwith *w, int idx, int hops, const List *aliascols)
{
	mcte *e = &w->e[idx];
	if (e->state == 0)
		eval_cte(m, w, idx);
	mcols base = {0};
	if (e->have)
		base = e->res;
	else
		push_run(m, &base, und(mstr("recursive reference to %s", e->cte->ctename)), mstr("CTE %s", e->cte->ctename));
	it->cols = cols_rename(m, &base, aliascols);
	/* SEARCH / CYCLE add columns built from the CTE's columns; a star from a nested level leaves them out */
	vd all = cols_worst(&base);
	const CommonTableExpr *c = e->cte;
	if (c->search_clause)
		push(m, &it->cols, (mcol){.name = c->search_clause->search_seq_column, .v = all, .noexpand = hops > 0});
	if (c->cycle_clause) {
		push(m, &it->cols, (mcol){.name = c->cycle_clause->cycle_mark_column, .v = all, .noexpand = hops > 0});
		push(m, &it->cols, (mcol){.name = c->cycle_clause->cycle_path_column, .v = all, .noexpand = hops > 0});
	}
}

/* A catalog relation's columns, each masked or clear as the catalog says. */
static void catalog_cols(mctx *m, mitem *it, const RangeVar *rv)
{
	const gw_sql_catalog *cat = m->cat;
	size_t n = 0;
	const char *const *names = NULL;
	bool odd = rv->catalogname || strchr(rv->relname, '.') || (rv->schemaname && strchr(rv->schemaname, '.'));
	if (!odd && cat && cat->columns)
		names = cat->columns(cat->ud, rv->schemaname, rv->relname, &n);
	if (!names) {
		const char *what = mstr("relation %s%s%s", rv->schemaname ? rv->schemaname : "", rv->schemaname ? "." : "",
			rv->relname);
		push_run(m, &it->cols, und(mstr("%s: its columns are not known", what)), what);
		return;
	}
	if (n > (size_t)M_MAX_CELLS) {
		mfail(m, "relation %s has too many columns", rv->relname);
		return;
	}
	for (size_t i = 0; i < n && !m->failed; i++) {
		mcol c = {.name = names[i]};
		if (!names[i]) {
			c.name = "?";
			c.anyname = true;
			c.v = und(mstr("relation %s: a column without a name", rv->relname));
		} else if (!cat->masked) {
			c.v = und("no masking rules known");
		} else if (cat->masked(cat->ud, rv->schemaname, rv->relname, names[i])) {
			msrc *src = palloc(sizeof(msrc));
			*src = (msrc){rv->schemaname, rv->relname, names[i]};
			c.v = (vd){R_MASK, NULL, src};
		}
		push(m, &it->cols, c);
	}
}

/* A RangeVar: a CTE (unqualified, when one is in scope) or a catalog relation. */
static mitem *rangevar_item(mctx *m, mlevel *L, const RangeVar *rv, bool cte_ok)
{
	mitem *it = item_new();
	const Alias *a = rv->alias;
	mwith *w;
	int idx, hops;
	if (cte_ok && !rv->schemaname && !rv->catalogname && find_cte(L, rv->relname, &w, &idx, &hops)) {
		it->refname = a ? a->aliasname : rv->relname;
		cte_item(m, it, w, idx, hops, a ? a->colnames : NIL);
		return it;
	}
	it->refname = a ? a->aliasname : rv->relname;
	it->relname = rv->relname;
	it->schema = rv->schemaname;
	it->plain_rel = !a;
	it->is_rel = true;
	catalog_cols(m, it, rv);
	if (a && a->colnames)
		it->cols = cols_rename(m, &it->cols, a->colnames);
	return it;
}

static mitem *from_item(mctx *m, mlevel *L, const Node *n);

/* JoinExpr: merged USING / NATURAL columns first, then the rest of each side (transformFromClauseItem). */
static mitem *join_item(mctx *m, mlevel *L, const JoinExpr *j)
{
	int start = L->nns;
	mitem *l = from_item(m, L, j->larg);
	mitem *r = from_item(m, L, j->rarg);
	mitem *it = item_new();
	if (m->failed)
		return it;
	mcols cols = {0}, merged = {0};
	const List *using = j->usingClause;
	bool natural_unknown = false;
	if (j->isNatural)
		for (int side = 0; side < 2; side++) {
			const mcols *c = side ? &r->cols : &l->cols;
			for (int i = 0; i < c->n; i++)
				if (!c->c[i].name || c->c[i].anyname)
					natural_unknown = true;
		}
	if (natural_unknown) {
		/* the common columns cannot be known: neither can the join's */
		vd v = vjoin(cols_worst(&l->cols), cols_worst(&r->cols));
		push_run(m, &cols, v, "a NATURAL JOIN of items with unknown columns");
	} else if (j->isNatural || using) {
		/* the merged names */
		const char **names = NULL;
		int nn = 0;
		if (j->isNatural) {
			names = palloc((size_t)(l->cols.n + 1) * sizeof(char *));
			m->work += (long)l->cols.n * r->cols.n;
			if (m->work > M_MAX_WORK) {
				mfail(m, "statement too large to analyse");
				return it;
			}
			for (int i = 0; i < l->cols.n; i++)
				for (int k = 0; k < r->cols.n; k++)
					if (!strcmp(l->cols.c[i].name, r->cols.c[k].name)) {
						names[nn++] = l->cols.c[i].name;
						break;
					}
		} else {
			names = palloc((size_t)(list_length(using) + 1) * sizeof(char *));
			const ListCell *lc;
			foreach(lc, using)
				if (IsA(lfirst(lc), String))
					names[nn++] = strVal(lfirst(lc));
		}
		bool *ltaken = palloc0((size_t)(l->cols.n + 1) * sizeof(bool));
		bool *rtaken = palloc0((size_t)(r->cols.n + 1) * sizeof(bool));
		for (int u = 0; u < nn; u++) {
			vd v = V_CLEAR, x;
			bool found = false;
			/* LEFT/INNER take the left value, RIGHT the right one, FULL both: take both */
			for (int side = 0; side < 2; side++) {
				const mitem *s = side ? r : l;
				bool *taken = side ? rtaken : ltaken;
				int k = item_col(m, s, names[u], false, &x);
				if (k)
					v = vjoin(v, x);
				if (k == 2) {
					found = true;
					for (int i = 0; i < s->cols.n; i++)
						if (s->cols.c[i].name && !s->cols.c[i].anyname && !strcmp(s->cols.c[i].name, names[u])) {
							taken[i] = true;
							break;
						}
				}
			}
			if (!found && !v.r)
				v = und(mstr("USING column %s not found", names[u]));
			push(m, &merged, (mcol){.name = names[u], .v = v});
		}
		for (int i = 0; i < merged.n; i++)
			push(m, &cols, merged.c[i]);
		for (int i = 0; i < l->cols.n; i++)
			if (!ltaken[i])
				push(m, &cols, l->cols.c[i]);
		for (int i = 0; i < r->cols.n; i++)
			if (!rtaken[i])
				push(m, &cols, r->cols.c[i]);
	} else {
		for (int i = 0; i < l->cols.n; i++)
			push(m, &cols, l->cols.c[i]);
		for (int i = 0; i < r->cols.n; i++)
			push(m, &cols, r->cols.c[i]);
	}
	if (j->join_using_alias) {
		/* JOIN ... USING (a) AS x: x.a names the merged column; x is not visible for unqualified columns */
		mitem *u = item_new();
		u->refname = j->join_using_alias->aliasname;
		u->cols_visible = false;
		for (int i = 0; i < merged.n; i++)
			push(m, &u->cols, merged.c[i]);
		if (natural_unknown)
			u->cols = cols;
		ns_add(L, u);
	}
	/* the join hides its inputs: for unqualified names always, entirely when it has an alias */
	for (int i = start; i < L->nns; i++) {
		L->ns[i]->cols_visible = false;
		if (j->alias)
			L->ns[i]->rel_visible = false;
	}
	it->refname = j->alias ? j->alias->aliasname : NULL;
	it->rel_visible = j->alias != NULL;
	it->cols = j->alias && j->alias->colnames ? cols_rename(m, &cols, j->alias->colnames) : cols;
	ns_add(L, it);
	return it;
}

/* A function in FROM (ROWS FROM, WITH ORDINALITY): its columns are as masked as its arguments. */
static mitem *function_item(mctx *m, mlevel *L, const RangeFunction *rf)
{
	mitem *it = item_new();
	bool saved = L->lateral_active, sure = true;
	const char *first = NULL;
	L->lateral_active = true; /* functions in FROM always see the items before them */
	const ListCell *lc;
	foreach(lc, rf->functions) {
		const List *pair = lfirst(lc);
		const Node *fn = linitial(pair);
		const List *cdl = rf->is_rowsfrom ? lsecond(pair) : list_length(rf->functions) == 1 ? rf->coldeflist : NIL;
		vd v = expr_v(m, L, fn);
		bool named = true;
		const char *name = colname(fn, &named, 0);
		if (!first) {
			first = name;
			sure = named; /* the item is named after its first function */
		}
		if (cdl) {
			const ListCell *c;
			foreach(c, cdl)
				push(m, &it->cols, (mcol){.name = IsA(lfirst(c), ColumnDef) ? ((const ColumnDef *)lfirst(c))->colname
					: "?", .v = v, .anyname = !IsA(lfirst(c), ColumnDef)});
		} else {
			push_run(m, &it->cols, v, mstr("function %s in FROM", name));
		}
	}
	L->lateral_active = saved;
	if (rf->ordinality)
		push(m, &it->cols, (mcol){.name = "ordinality"});
	if (!rf->alias && (!sure || !first))
		mfail(m, "a function in FROM not understood");
	it->refname = rf->alias ? rf->alias->aliasname : first;
	if (rf->alias && rf->alias->colnames)
		it->cols = cols_rename(m, &it->cols, rf->alias->colnames);
	return it;
}

static mitem *from_item(mctx *m, mlevel *L, const Node *n)
{
	if (!enter(m))
		return item_new();
	mitem *it = NULL;
	switch (nodeTag(n)) {
	case T_RangeVar:
		it = rangevar_item(m, L, (const RangeVar *)n, true);
		ns_add(L, it);
		break;
	case T_RangeSubselect: {
		const RangeSubselect *rs = (const RangeSubselect *)n;
		it = item_new();
		bool saved = L->lateral_active;
		L->lateral_active = rs->lateral;
		mcols c = {0};
		if (query_cols(m, L, rs->subquery, &c) <= 0)
			push_run(m, &c, und("a sub-query in FROM without output columns"), "a sub-query in FROM");
		L->lateral_active = saved;
		it->refname = rs->alias ? rs->alias->aliasname : NULL;
		it->rel_visible = it->refname != NULL;
		it->cols = rs->alias && rs->alias->colnames ? cols_rename(m, &c, rs->alias->colnames) : c;
		ns_add(L, it);
		break;
	}
	case T_RangeFunction:
		it = function_item(m, L, (const RangeFunction *)n);
		ns_add(L, it);
		break;
	case T_RangeTableFunc: {
		/* XMLTABLE: every column is as masked as the document, row and column expressions */
		const RangeTableFunc *t = (const RangeTableFunc *)n;
		it = item_new();
		bool saved = L->lateral_active;
		L->lateral_active = true;
		vd v = vjoin(expr_v(m, L, t->docexpr), expr_v(m, L, t->rowexpr));
		v = vjoin(v, list_v(m, L, t->namespaces));
		const ListCell *lc;
		foreach(lc, t->columns) {
			const RangeTableFuncCol *c = lfirst(lc);
			v = vjoin(v, vjoin(expr_v(m, L, c->colexpr), expr_v(m, L, c->coldefexpr)));
		}
		L->lateral_active = saved;
		foreach(lc, t->columns) {
			const RangeTableFuncCol *c = lfirst(lc);
			push(m, &it->cols, (mcol){.name = c->colname, .v = c->for_ordinality ? V_CLEAR : v});
		}
		it->refname = t->alias ? t->alias->aliasname : "xmltable";
		if (t->alias && t->alias->colnames)
			it->cols = cols_rename(m, &it->cols, t->alias->colnames);
		ns_add(L, it);
		break;
	}
	case T_RangeTableSample: {
		const RangeTableSample *t = (const RangeTableSample *)n;
		it = from_item(m, L, t->relation);
		break;
	}
	case T_JoinExpr:
		it = join_item(m, L, (const JoinExpr *)n);
		break;
	default:
		it = item_new();
		push_run(m, &it->cols, und(mstr("FROM item node %d not analysed", (int)nodeTag(n))), "a FROM item");
		ns_add(L, it);
		break;
	}
	leave(m);
	return it;
}

static void from_clause(mctx *m, mlevel *L, const List *from)
{
	const ListCell *lc;
	foreach(lc, from) {
		if (m->failed)
			return;
		from_item(m, L, lfirst(lc));
	}
	for (int i = 0; i < L->nns; i++)
		L->ns[i]->lateral_only = false;
}

/* ---- target lists ---- */

static void append_item_cols(mctx *m, mcols *out, const mitem *it)
{
	for (int i = 0; i < it->cols.n; i++)
		if (!it->cols.c[i].noexpand)
			push(m, out, it->cols.c[i]);
}

/* *, t.*, s.t.* in a target list (ExpandColumnRefStar). */
static void star_ref(mctx *m, mlevel *L, const ColumnRef *cr, mcols *out)
{
	int n = list_length(cr->fields);
	if (n == 1) {
		bool any = false;
		for (int i = 0; i < L->nns; i++) {
			const mitem *it = L->ns[i];
			if (!it->cols_visible || it->lateral_only)
				continue;
			any = true;
			append_item_cols(m, out, it);
		}
		if (!any)
			push_run(m, out, und("SELECT * with no FROM items"), "SELECT * with no FROM items");
		return;
	}
	const char *f[4] = {0};
	for (int i = 0; i < n - 1 && i < 4; i++) {
		const Node *x = list_nth(cr->fields, i);
		f[i] = IsA(x, String) ? strVal(x) : NULL;
	}
	mitem *items[8];
	int k = 0;
	if (n <= 4 && f[n - 2] && (n < 3 || f[n - 3]))
		k = lookup_rel(m, L, n >= 3 ? f[n - 3] : NULL, f[n - 2], items, 8);
	if (k == 1)
		append_item_cols(m, out, items[0]);
	else
		push_run(m, out, und(k ? "an ambiguous rel.*" : "rel.* of no FROM item"), "a rel.* not resolved");
}

static void target_list(mctx *m, mlevel *L, const List *tl, mcols *out)
{
	const ListCell *lc;
	foreach(lc, tl) {
		if (m->failed)
			return;
		const ResTarget *rt = lfirst(lc);
		if (!IsA(rt, ResTarget)) {
			push_run(m, out, und("a target not understood"), "a target not understood");
			continue;
		}
		const Node *val = rt->val;
		if (val && IsA(val, ColumnRef) && IsA(llast(((const ColumnRef *)val)->fields), A_Star)) {
			star_ref(m, L, (const ColumnRef *)val, out);
			continue;
		}
		if (val && IsA(val, A_Indirection) && IsA(llast(((const A_Indirection *)val)->indirection), A_Star)) {
			/* (c).*: the columns of item c when that is certain; the fields of any other value are unknown */
			const A_Indirection *ai = (const A_Indirection *)val;
			mitem *it = NULL;
			vd v = ai->arg && IsA(ai->arg, ColumnRef) ? colref_v(m, L, (const ColumnRef *)ai->arg, &it)
				: expr_v(m, L, ai->arg);
			bool noexp = false;
			if (it)
				for (int i = 0; i < it->cols.n; i++)
					noexp |= it->cols.c[i].noexpand;
			if (it && list_length(ai->indirection) == 1 && !noexp)
				append_item_cols(m, out, it);
			else
				push_run(m, out, vjoin(v, list_v(m, L, ai->indirection)), "the fields of (expression).*");
			continue;
		}
		bool sure = true;
		vd v = expr_v(m, L, val);
		const char *name = rt->name ? rt->name : colname(val, &sure, 0);
		push(m, out, (mcol){.name = name, .v = v, .anyname = !sure});
	}
}

/* ---- queries ---- */

static void with_setup(mlevel *L, const WithClause *wc, mlevel *outer)
{
	if (!wc)
		return;
	mwith *w = palloc0(sizeof(mwith));
	w->n = list_length(wc->ctes);
	w->e = palloc0((size_t)(w->n + 1) * sizeof(mcte));
	w->recursive = wc->recursive;
	w->outer = outer;
	int i = 0;
	const ListCell *lc;
	foreach(lc, wc->ctes)
		w->e[i++].cte = lfirst(lc);
	L->with = w;
	L->with_visible = w->n;
}

/* Positionwise worst of two set-operation arms (names from the left); a run or a count mismatch: one run. */
static void setop_merge(mctx *m, mcols *a, const mcols *b)
{
	if (a->n != b->n || cols_have_run(a) || cols_have_run(b)) {
		vd v = vjoin(cols_worst(a), cols_worst(b));
		a->n = 0;
		push_run(m, a, v, "a set operation whose arms' columns are not known");
		return;
	}
	for (int i = 0; i < a->n; i++)
		a->c[i].v = vjoin(a->c[i].v, b->c[i].v);
}

static void select_cols(mctx *m, mlevel *parent, const SelectStmt *s, mcols *out);

/*
 * UNION / INTERSECT / EXCEPT: the arms are sub-queries of a level that holds
 * only the WITH. A left-deep chain (a UNION b UNION c ...) is read without
 * recursing, so long generated chains do not hit the depth limit.
 */
static void setop_cols(mctx *m, mlevel *parent, const SelectStmt *s, mcols *out)
{
	mlevel L0 = {.up = parent};
	with_setup(&L0, s->withClause, parent);
	int n = 0, cap = 16;
	const SelectStmt **rargs = palloc((size_t)cap * sizeof(*rargs));
	const SelectStmt *cur = s;
	while (cur->op != SETOP_NONE && (cur == s || !cur->withClause) && cur->larg) {
		if (n == cap) {
			cap *= 2;
			rargs = repalloc(rargs, (size_t)cap * sizeof(*rargs));
		}
		rargs[n++] = cur->rarg;
		cur = cur->larg;
		if (++m->work > M_MAX_WORK) {
			mfail(m, "statement too large to analyse");
			return;
		}
	}
	select_cols(m, &L0, cur, out);
	for (int i = n - 1; i >= 0 && !m->failed; i--) {
		mcols r = {0};
		select_cols(m, &L0, rargs[i], &r);
		setop_merge(m, out, &r);
		if (r.c)
			pfree(r.c);
	}
}

static void values_cols(mctx *m, mlevel *L, const List *rows, mcols *out)
{
	int ncol = -1;
	const ListCell *lc;
	foreach(lc, rows) {
		const List *row = lfirst(lc);
		int k = list_length(row);
		if (ncol < 0) {
			ncol = k;
			for (int i = 0; i < k; i++)
				push(m, out, (mcol){.name = mstr("column%d", i + 1)});
		} else if (k != ncol || out->n != ncol) {
			out->n = 0;
			push_run(m, out, und("VALUES rows of different lengths"), "VALUES rows of different lengths");
			return;
		}
		int i = 0;
		const ListCell *c;
		foreach(c, row) {
			if (m->failed)
				return;
			out->c[i].v = vjoin(out->c[i].v, expr_v(m, L, lfirst(c)));
			i++;
		}
	}
}

static void select_cols(mctx *m, mlevel *parent, const SelectStmt *s, mcols *out)
{
	if (!enter(m))
		return;
	if (s->op != SETOP_NONE) {
		setop_cols(m, parent, s, out);
		leave(m);
		return;
	}
	mlevel L = {.up = parent};
	with_setup(&L, s->withClause, parent);
	if (s->valuesLists) {
		values_cols(m, &L, s->valuesLists, out);
	} else {
		from_clause(m, &L, s->fromClause);
		L.windows = s->windowClause;
		target_list(m, &L, s->targetList, out);
	}
	leave(m);
}

/*
 * RETURNING shows the row as written: a target column is as masked as the
 * catalog says and as what is written into it. UPDATE SET (and ON CONFLICT DO
 * UPDATE SET) expressions, read in scope L, raise the columns they assign; an
 * assignment to a column not known raises every column.
 */
static void set_writes(mctx *m, mlevel *L, mitem *t, const List *targets)
{
	vd *w = palloc0((size_t)(t->cols.n + 1) * sizeof(vd));
	vd other = V_CLEAR;
	const ListCell *lc;
	foreach(lc, targets) {
		const ResTarget *rt = lfirst(lc);
		if (m->failed)
			return;
		if (!IsA(rt, ResTarget))
			continue;
		vd v = vjoin(expr_v(m, L, rt->val), list_v(m, L, rt->indirection));
		bool found = false;
		for (int i = 0; rt->name && i < t->cols.n; i++)
			if (t->cols.c[i].name && !t->cols.c[i].anyname && !strcmp(t->cols.c[i].name, rt->name)) {
				w[i] = vjoin(w[i], v);
				found = true;
			}
		if (!found)
			other = vjoin(other, v);
	}
	for (int i = 0; i < t->cols.n; i++)
		t->cols.c[i].v = vjoin(t->cols.c[i].v, vjoin(w[i], other));
}

/* INSERT: the source's columns go to the listed columns (or the table's, in order); then ON CONFLICT DO UPDATE. */
static void insert_writes(mctx *m, mlevel *L, const InsertStmt *s, mitem *t)
{
	if (s->selectStmt) {
		mcols src = {0};
		if (query_cols(m, L, s->selectStmt, &src) <= 0)
			return;
		int ntarget = s->cols ? list_length(s->cols) : t->cols.n;
		if (cols_have_run(&src) || (!s->cols && cols_have_run(&t->cols))) {
			vd all = cols_worst(&src);
			for (int i = 0; i < t->cols.n; i++)
				t->cols.c[i].v = vjoin(t->cols.c[i].v, all);
		} else {
			for (int k = 0; k < src.n && k < ntarget; k++) {
				if (!s->cols) {
					t->cols.c[k].v = vjoin(t->cols.c[k].v, src.c[k].v);
					continue;
				}
				const ResTarget *rt = list_nth(s->cols, k);
				bool found = false;
				for (int i = 0; IsA(rt, ResTarget) && rt->name && i < t->cols.n; i++)
					if (t->cols.c[i].name && !t->cols.c[i].anyname && !strcmp(t->cols.c[i].name, rt->name)) {
						t->cols.c[i].v = vjoin(t->cols.c[i].v, src.c[k].v);
						found = true;
					}
				for (int i = 0; !found && i < t->cols.n; i++)
					t->cols.c[i].v = vjoin(t->cols.c[i].v, src.c[k].v);
			}
		}
	}
	const OnConflictClause *oc = s->onConflictClause;
	if (oc && oc->action == ONCONFLICT_UPDATE) {
		/* EXCLUDED (the row proposed) and the target are in scope of the SET list */
		int saved = L->nns;
		mitem *ex = item_new();
		ex->refname = "excluded";
		ex->cols = cols_rename(m, &t->cols, NIL);
		ns_add(L, ex);
		ns_add(L, t);
		for (int i = saved; i < L->nns; i++)
			L->ns[i]->lateral_only = false;
		set_writes(m, L, t, oc->targetList);
		L->nns = saved;
	}
}

/* INSERT / UPDATE / DELETE ... RETURNING: the target (with its alias) and the FROM / USING items are in scope. */
static int dml_cols(mctx *m, mlevel *parent, const Node *n, mcols *out)
{
	const RangeVar *rel;
	const List *from = NIL, *ret;
	const WithClause *wc;
	switch (nodeTag(n)) {
	case T_InsertStmt:
		rel = ((const InsertStmt *)n)->relation;
		ret = ((const InsertStmt *)n)->returningList;
		wc = ((const InsertStmt *)n)->withClause;
		break;
	case T_UpdateStmt:
		rel = ((const UpdateStmt *)n)->relation;
		from = ((const UpdateStmt *)n)->fromClause;
		ret = ((const UpdateStmt *)n)->returningList;
		wc = ((const UpdateStmt *)n)->withClause;
		break;
	case T_DeleteStmt:
		rel = ((const DeleteStmt *)n)->relation;
		from = ((const DeleteStmt *)n)->usingClause;
		ret = ((const DeleteStmt *)n)->returningList;
		wc = ((const DeleteStmt *)n)->withClause;
		break;
	default:
		return 0; /* MERGE has no RETURNING in PostgreSQL 15 */
	}
	if (!ret)
		return 0;
	if (!enter(m))
		return -1;
	mlevel L = {.up = parent};
	with_setup(&L, wc, parent);
	mitem *t = rangevar_item(m, &L, rel, false); /* the target is a table, never a CTE */
	if (IsA(n, InsertStmt))
		insert_writes(m, &L, (const InsertStmt *)n, t); /* the source does not see the target */
	ns_add(&L, t);
	from_clause(m, &L, from);
	if (IsA(n, UpdateStmt))
		set_writes(m, &L, t, ((const UpdateStmt *)n)->targetList);
	target_list(m, &L, ret, out);
	leave(m);
	return 1;
}

/* The rows a query produces: 1 with out, 0 none (DML without RETURNING), -1 failed. */
static int query_cols(mctx *m, mlevel *parent, const Node *q, mcols *out)
{
	if (m->failed || !q)
		return -1;
	switch (nodeTag(q)) {
	case T_SelectStmt:
		select_cols(m, parent, (const SelectStmt *)q, out);
		break;
	case T_InsertStmt: case T_UpdateStmt: case T_DeleteStmt: case T_MergeStmt: {
		int rc = dml_cols(m, parent, q, out);
		if (rc <= 0)
			return m->failed ? -1 : rc;
		break;
	}
	default:
		push_run(m, out, und(mstr("statement node %d not analysed", (int)nodeTag(q))), "a statement not analysed");
		break;
	}
	return m->failed ? -1 : 1;
}

static bool cols_equal(const mcols *a, const mcols *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (a->c[i].v.r != b->c[i].v.r || !a->c[i].name != !b->c[i].name)
			return false;
	return true;
}

/*
 * A CTE's columns, analysed where the WITH stands (its own statement's FROM
 * items are not in scope; earlier CTEs are, all of them with RECURSIVE). A
 * recursive one — non-recursive term UNION [ALL] recursive term — starts from
 * the non-recursive term's columns and is analysed again with its own
 * reference reading the result so far, until the verdicts stop rising.
 */
static void eval_cte(mctx *m, mwith *w, int idx)
{
	mcte *e = &w->e[idx];
	if (e->state)
		return;
	e->state = 1;
	mlevel tmp = {.up = w->outer, .with = w, .with_visible = w->recursive ? w->n : idx};
	const Node *q = e->cte->ctequery;
	const List *alias = e->cte->aliascolnames;
	const SelectStmt *s = q && IsA(q, SelectStmt) ? (const SelectStmt *)q : NULL;
	mcols r = {0};
	if (w->recursive && s && s->op == SETOP_UNION && s->larg && !s->withClause) {
		if (query_cols(m, &tmp, (const Node *)s->larg, &r) <= 0)
			push_run(m, &r, und("a recursive CTE not understood"), "a recursive CTE");
		e->res = cols_rename(m, &r, alias);
		e->have = true;
		bool stable = false;
		for (int round = 0; round < M_MAX_ROUNDS && !m->failed && !stable; round++) {
			mcols x = {0};
			if (query_cols(m, &tmp, q, &x) <= 0)
				break;
			mcols y = cols_rename(m, &x, alias);
			mcols next = cols_rename(m, &e->res, NIL);
			setop_merge(m, &next, &y);
			stable = cols_equal(&next, &e->res);
			e->res = next;
		}
		if (!stable)
			for (int i = 0; i < e->res.n; i++)
				e->res.c[i].v = (vd){R_MASK, NULL}; /* not settled: the top of the order is a safe answer */
	} else {
		if (query_cols(m, &tmp, q, &r) <= 0)
			push_run(m, &r, und(mstr("WITH query %s has no output columns", e->cte->ctename)),
				mstr("CTE %s", e->cte->ctename));
		e->res = cols_rename(m, &r, alias);
		e->have = true;
	}
	e->state = 2;
}

static void copy_table_cols(mctx *m, const CopyStmt *c, mcols *out)
{
	mitem *it = item_new();
	catalog_cols(m, it, c->relation);
	if (!c->attlist) {
		*out = it->cols;
		return;
	}
	const ListCell *lc;
	foreach(lc, c->attlist) {
		const char *name = IsA(lfirst(lc), String) ? strVal(lfirst(lc)) : "?";
		vd v = V_CLEAR;
		if (item_col(m, it, name, false, &v) != 2)
			v = vjoin(v, und(mstr("column %s of %s is not known", name, c->relation->relname)));
		push(m, out, (mcol){.name = name, .v = v});
	}
}

/* A statement's output columns: 1 with out, 0 none, -1 (m->why says why). inner: the rows of its inner query. */
static int stmt_cols(mctx *m, const Node *n, bool inner, mcols *out)
{
	switch (nodeTag(n)) {
	case T_SelectStmt: {
		const SelectStmt *s = (const SelectStmt *)n;
		while (s->op != SETOP_NONE && s->larg)
			s = s->larg;
		if (s->intoClause && !inner)
			return 0; /* SELECT INTO: a table is made, no rows are sent */
		return query_cols(m, NULL, n, out);
	}
	case T_InsertStmt: case T_UpdateStmt: case T_DeleteStmt: case T_MergeStmt:
		return query_cols(m, NULL, n, out);
	case T_ExplainStmt:
		push(m, out, (mcol){.name = "QUERY PLAN"}); /* a plan holds no row values */
		return 1;
	case T_VariableShowStmt: {
		const char *name = ((const VariableShowStmt *)n)->name;
		if (name && !strcmp(name, "all")) {
			push(m, out, (mcol){.name = "name"});
			push(m, out, (mcol){.name = "setting"});
			push(m, out, (mcol){.name = "description"});
		} else {
			push(m, out, (mcol){.name = name ? name : "?"});
		}
		return 1;
	}
	case T_DeclareCursorStmt:
		return inner ? query_cols(m, NULL, ((const DeclareCursorStmt *)n)->query, out) : 0;
	case T_PrepareStmt:
		return inner ? query_cols(m, NULL, ((const PrepareStmt *)n)->query, out) : 0;
	case T_ViewStmt:
		return inner ? query_cols(m, NULL, ((const ViewStmt *)n)->query, out) : 0;
	case T_CreateTableAsStmt: {
		const Node *q = ((const CreateTableAsStmt *)n)->query;
		if (!inner)
			return 0;
		if (q && IsA(q, ExecuteStmt)) {
			mfail(m, "CREATE TABLE AS EXECUTE: the prepared statement is not known here");
			return -1;
		}
		return query_cols(m, NULL, q, out);
	}
	case T_CopyStmt: {
		const CopyStmt *c = (const CopyStmt *)n;
		if (c->is_from)
			return 0;
		if (!inner) {
			mfail(m, "COPY ... TO sends CopyData: analyse it with gw_sql_mask_columns_inner");
			return -1;
		}
		if (c->query)
			return query_cols(m, NULL, c->query, out);
		if (!c->relation) {
			mfail(m, "COPY without a table or query");
			return -1;
		}
		copy_table_cols(m, c, out);
		return m->failed ? -1 : 1;
	}
	case T_FetchStmt:
		if (((const FetchStmt *)n)->ismove)
			return 0;
		mfail(m, "FETCH: the cursor's query is not known here");
		return -1;
	case T_ExecuteStmt:
		mfail(m, "EXECUTE: the prepared statement is not known here");
		return -1;
	case T_CallStmt:
		mfail(m, "CALL may return a row of output arguments");
		return -1;
	case T_TransactionStmt: case T_VariableSetStmt: case T_ClosePortalStmt: case T_DeallocateStmt:
	case T_DiscardStmt: case T_ListenStmt: case T_UnlistenStmt: case T_NotifyStmt: case T_LockStmt:
	case T_TruncateStmt: case T_DropStmt: case T_CreateStmt: case T_AlterTableStmt: case T_IndexStmt:
	case T_CommentStmt: case T_RenameStmt: case T_CreateSeqStmt: case T_AlterSeqStmt:
	case T_CreateEnumStmt: case T_AlterEnumStmt: case T_CompositeTypeStmt: case T_CreateDomainStmt:
	case T_AlterDomainStmt: case T_CreateFunctionStmt: case T_AlterFunctionStmt: case T_RuleStmt:
	case T_CreateTrigStmt: case T_CreateSchemaStmt: case T_AlterObjectSchemaStmt: case T_AlterOwnerStmt:
	case T_GrantStmt: case T_CreateRangeStmt: case T_DefineStmt: case T_CreateStatsStmt:
	case T_AlterStatsStmt: case T_RefreshMatViewStmt:
	case T_CreatePolicyStmt: case T_AlterPolicyStmt: case T_AlterDefaultPrivilegesStmt:
	case T_AlterSystemStmt: case T_DropdbStmt: case T_DropRoleStmt: case T_DropTableSpaceStmt:
	case T_DropOwnedStmt: case T_DoStmt: case T_VacuumStmt: case T_ReindexStmt: case T_ClusterStmt:
	case T_CreateRoleStmt: case T_AlterRoleStmt: case T_AlterRoleSetStmt: case T_GrantRoleStmt:
	case T_CreatedbStmt: case T_AlterDatabaseStmt: case T_AlterDatabaseSetStmt: case T_LoadStmt:
	case T_CheckPointStmt: case T_CreateExtensionStmt: case T_AlterExtensionStmt:
	case T_CreateTableSpaceStmt: case T_CreateFdwStmt: case T_CreateForeignServerStmt:
	case T_CreateUserMappingStmt: case T_ImportForeignSchemaStmt: case T_CreateSubscriptionStmt:
	case T_CreatePublicationStmt: case T_CreateEventTrigStmt: case T_ReassignOwnedStmt: case T_SecLabelStmt:
	case T_ConstraintsSetStmt:
		return 0;
	default:
		mfail(m, "statement node %d: its output is not known", (int)nodeTag(n));
		return -1;
	}
}

static int mask_columns(const char *text, size_t len, const gw_sql_catalog *cat, uint8_t *out, size_t max,
	char *why, size_t whylen, bool inner)
{
	if (why && whylen)
		why[0] = 0;
	char *sql = gw_xmalloc(len + 1);
	memcpy(sql, text, len);
	sql[len] = 0;
	mctx m = {.cat = cat};
	int rc;
	MemoryContext ctx = pg_query_enter_memory_context();
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse(sql);
	if (r.error) {
		mfail(&m, "does not parse: %s", r.error->message ? r.error->message : "syntax error");
		pg_query_free_error(r.error);
		rc = -1;
	} else if (list_length(r.tree) == 0) {
		rc = 0;
	} else if (list_length(r.tree) > 1) {
		mfail(&m, "more than one statement");
		rc = -1;
	} else {
		mcols c = {0};
		rc = stmt_cols(&m, linitial_node(RawStmt, r.tree)->stmt, inner, &c);
		if (m.failed)
			rc = -1;
		for (int i = 0; rc > 0 && i < c.n; i++)
			if (!c.c[i].name) {
				mfail(&m, "%s: its columns are not known, so the output columns cannot be mapped",
					c.c[i].what ? c.c[i].what : "an item");
				rc = -1;
			}
		if (rc > 0) {
			rc = c.n;
			for (int i = 0; i < c.n; i++) {
				uint8_t v = c.c[i].v.r == R_MASK ? GW_SQL_COL_MASKED
					: c.c[i].v.r == R_UND ? GW_SQL_COL_UNDECIDED : GW_SQL_COL_CLEAR;
				if ((size_t)i < max && out)
					out[i] = v;
				if (v == GW_SQL_COL_UNDECIDED && !m.why[0])
					snprintf(m.why, sizeof(m.why), "column %d: %s", i + 1,
						c.c[i].v.why ? c.c[i].v.why : "undecided");
			}
		}
	}
	if (why && whylen)
		snprintf(why, whylen, "%s", m.why);
	free(r.stderr_buffer);
	pg_query_exit_memory_context(ctx);
	free(sql);
	return rc;
}

int gw_sql_mask_columns(const char *text, size_t len, const gw_sql_catalog *cat, uint8_t *out, size_t max, char *why,
	size_t whylen)
{
	return mask_columns(text, len, cat, out, max, why, whylen, false);
}

int gw_sql_mask_columns_inner(const char *text, size_t len, const gw_sql_catalog *cat, uint8_t *out, size_t max,
	char *why, size_t whylen)
{
	return mask_columns(text, len, cat, out, max, why, whylen, true);
}

/* ---- writes under masking: gw_sql_mask_writes (see sqlparse.h) ---- */

static void mrefuse(mctx *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mrefuse(mctx *m, const char *fmt, ...)
{
	if (m->failed)
		return;
	m->failed = m->refused = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
}

static const char *rv_name(const RangeVar *rv)
{
	return mstr("%s%s%s", rv->schemaname ? rv->schemaname : "", rv->schemaname ? "." : "", rv->relname);
}

/* A value of verdict v goes into (into, schema.rel, col): a masked or undecided one only where the catalog says. */
static void flow(mctx *m, vd v, int into, const char *schema, const char *rel, const char *col)
{
	if (m->failed || v.r == R_CLEAR)
		return;
	struct gw_sql_flow f = {.verdict = v.r == R_MASK ? GW_SQL_COL_MASKED : GW_SQL_COL_UNDECIDED, .into = into,
		.schema = schema, .rel = rel, .col = col, .why = v.why};
	if (v.r == R_MASK && v.src) {
		f.src_schema = v.src->schema;
		f.src_rel = v.src->rel;
		f.src_col = v.src->col;
	}
	if (m->cat && m->cat->write_ok && m->cat->write_ok(m->cat->ud, &f))
		return;
	const char *what = f.src_col ? mstr("the masked column %s%s%s.%s", f.src_schema ? f.src_schema : "",
			f.src_schema ? "." : "", f.src_rel, f.src_col)
		: v.r == R_MASK ? "a value computed from a masked column"
		: mstr("a value whose origin cannot be decided (%s)", v.why ? v.why : "unknown");
	const char *rn = mstr("%s%s%s", schema ? schema : "", schema ? "." : "", rel ? rel : "?");
	if (into == GW_SQL_INTO_FILE)
		mrefuse(m, "%s would be written to %s on the server", what, rn);
	else if (into == GW_SQL_INTO_NEW)
		mrefuse(m, "%s would be stored in %s%s of the new table %s, which no rule hiding it whole covers", what,
			col ? "column " : "a column", col ? col : "", rn);
	else
		mrefuse(m, "%s would be written into %s%s of %s, where no rule masks it as strongly", what,
			col ? "column " : "a column", col ? col : "", rn);
}

static void w_stmt(mctx *m, mlevel *parent, const Node *n);

/* Data-modifying CTEs: each is a statement of its own (its scope is the WITH's, as in eval_cte). */
static void w_with(mctx *m, mlevel *L, const WithClause *wc)
{
	if (!wc || !L->with)
		return;
	for (int i = 0; i < L->with->n && !m->failed; i++) {
		const Node *q = L->with->e[i].cte->ctequery;
		if (!q || IsA(q, SelectStmt))
			continue;
		mlevel tmp = {.up = L->with->outer, .with = L->with, .with_visible = L->with->recursive ? L->with->n : i};
		w_stmt(m, &tmp, q);
	}
}

/* UPDATE SET / ON CONFLICT DO UPDATE SET / MERGE ... UPDATE SET: one assignment, read in scope L. */
static void w_set(mctx *m, mlevel *L, const ResTarget *rt, const RangeVar *rv)
{
	if (!IsA(rt, ResTarget)) {
		mfail(m, "an assignment not understood");
		return;
	}
	vd v;
	const MultiAssignRef *mr = rt->val && IsA(rt->val, MultiAssignRef) ? (const MultiAssignRef *)rt->val : NULL;
	if (mr && mr->source && IsA(mr->source, RowExpr) && mr->colno >= 1 &&
		mr->colno <= list_length(((const RowExpr *)mr->source)->args)) {
		/* SET (a, b) = (x, y): a takes x */
		v = expr_v(m, L, list_nth(((const RowExpr *)mr->source)->args, mr->colno - 1));
	} else if (mr && mr->source && IsA(mr->source, SubLink)) {
		/* SET (a, b) = (SELECT x, y ...): a takes the sub-query's first column */
		mcols c = {0};
		int rc = query_cols(m, L, ((const SubLink *)mr->source)->subselect, &c);
		v = rc > 0 && !cols_have_run(&c) && mr->colno >= 1 && mr->colno <= c.n ? c.c[mr->colno - 1].v
			: rc > 0 ? cols_worst(&c) : und("a sub-query without columns");
	} else {
		v = expr_v(m, L, rt->val);
	}
	if (rt->indirection) /* SET a[1] = x, SET a.f = x: part of a value */
		v = derived(vjoin(v, list_v(m, L, rt->indirection)));
	flow(m, v, GW_SQL_INTO_TABLE, rv->schemaname, rv->relname, rt->name);
}

/*
 * Values going into the target's columns in order: named by cols (ResTargets) or, without them, the table's
 * columns in attnum order. *proposed (indexed like t->cols) gets what each column receives (for EXCLUDED).
 */
static void w_values(mctx *m, const mcols *src, const List *cols, const mitem *t, const RangeVar *rv, vd *proposed)
{
	if (cols_have_run(src) || (!cols && cols_have_run(&t->cols))) {
		vd all = cols_worst(src);
		flow(m, all, GW_SQL_INTO_TABLE, rv->schemaname, rv->relname, NULL);
		for (int i = 0; proposed && i < t->cols.n; i++)
			proposed[i] = all;
		return;
	}
	for (int k = 0; k < src->n && !m->failed; k++) {
		vd v = src->c[k].v;
		const char *name = NULL;
		if (cols) {
			if (k >= list_length(cols))
				break; /* more values than columns: PostgreSQL refuses the statement */
			const ResTarget *rt = list_nth(cols, k);
			if (!IsA(rt, ResTarget)) {
				mfail(m, "an INSERT column list not understood");
				return;
			}
			name = rt->name;
			if (rt->indirection)
				v = derived(v);
		} else if (k < t->cols.n && !t->cols.c[k].anyname) {
			name = t->cols.c[k].name;
		} else {
			break; /* more values than the table has columns: refused by PostgreSQL */
		}
		flow(m, v, GW_SQL_INTO_TABLE, rv->schemaname, rv->relname, name);
		for (int i = 0; proposed && name && i < t->cols.n; i++)
			if (t->cols.c[i].name && !strcmp(t->cols.c[i].name, name))
				proposed[i] = vjoin(proposed[i], v);
	}
}

static void w_insert(mctx *m, mlevel *parent, const InsertStmt *s)
{
	mlevel L = {.up = parent};
	with_setup(&L, s->withClause, parent);
	w_with(m, &L, s->withClause);
	const RangeVar *rv = s->relation;
	mitem *t = rangevar_item(m, &L, rv, false); /* the target is a table, never a CTE */
	vd *proposed = palloc0((size_t)(t->cols.n + 1) * sizeof(vd));
	if (s->selectStmt && !m->failed) {
		mcols src = {0};
		int rc = query_cols(m, &L, s->selectStmt, &src); /* the source does not see the target */
		if (rc > 0)
			w_values(m, &src, s->cols, t, rv, proposed);
	}
	const OnConflictClause *oc = s->onConflictClause;
	if (oc && oc->action == ONCONFLICT_UPDATE && !m->failed) {
		/* EXCLUDED is the row proposed; the target row is in scope too */
		mitem *ex = item_new();
		ex->refname = "excluded";
		for (int i = 0; i < t->cols.n; i++) {
			mcol c = t->cols.c[i];
			if (c.name)
				c.v = proposed[i];
			push(m, &ex->cols, c);
		}
		ns_add(&L, ex);
		ns_add(&L, t);
		for (int i = 0; i < L.nns; i++)
			L.ns[i]->lateral_only = false;
		const ListCell *lc;
		foreach(lc, oc->targetList)
			w_set(m, &L, lfirst(lc), rv);
	}
}

static void w_update(mctx *m, mlevel *parent, const UpdateStmt *s)
{
	mlevel L = {.up = parent};
	with_setup(&L, s->withClause, parent);
	w_with(m, &L, s->withClause);
	mitem *t = rangevar_item(m, &L, s->relation, false);
	ns_add(&L, t);
	from_clause(m, &L, s->fromClause);
	const ListCell *lc;
	foreach(lc, s->targetList)
		w_set(m, &L, lfirst(lc), s->relation);
}

static void w_merge(mctx *m, mlevel *parent, const MergeStmt *s)
{
	mlevel L = {.up = parent};
	with_setup(&L, s->withClause, parent);
	w_with(m, &L, s->withClause);
	const RangeVar *rv = s->relation;
	mitem *t = rangevar_item(m, &L, rv, false);
	if (s->sourceRelation)
		from_item(m, &L, s->sourceRelation);
	ns_add(&L, t);
	for (int i = 0; i < L.nns; i++)
		L.ns[i]->lateral_only = false;
	const ListCell *lc;
	foreach(lc, s->mergeWhenClauses) {
		const MergeWhenClause *w = lfirst(lc);
		if (m->failed)
			return;
		if (w->commandType == CMD_UPDATE) {
			const ListCell *c;
			foreach(c, w->targetList)
				w_set(m, &L, lfirst(c), rv);
		} else if (w->commandType == CMD_INSERT && w->values) {
			/* INSERT (cols) VALUES (...): only the source is visible there; the target's names resolve too (more is safe) */
			mcols src = {0};
			const ListCell *c;
			int k = 0;
			foreach(c, w->values)
				push(m, &src, (mcol){.name = mstr("column%d", ++k), .v = expr_v(m, &L, lfirst(c))});
			w_values(m, &src, w->targetList, t, rv, NULL);
		}
	}
}

/* A table a statement creates from a query (SELECT INTO, CREATE TABLE / MATERIALIZED VIEW AS). */
static void w_into(mctx *m, const Node *q, const IntoClause *into)
{
	mcols c = {0};
	if (query_cols(m, NULL, q, &c) <= 0)
		return;
	const RangeVar *rv = into->rel;
	if (cols_have_run(&c)) {
		flow(m, cols_worst(&c), GW_SQL_INTO_NEW, rv->schemaname, rv->relname, NULL);
		return;
	}
	for (int i = 0; i < c.n && !m->failed; i++) {
		const char *name = i < list_length(into->colNames) && IsA(list_nth(into->colNames, i), String) ?
			strVal(list_nth(into->colNames, i)) : c.c[i].anyname ? NULL : c.c[i].name;
		flow(m, c.c[i].v, GW_SQL_INTO_NEW, rv->schemaname, rv->relname, name);
	}
}

static void w_select(mctx *m, mlevel *parent, const SelectStmt *s)
{
	mlevel L = {.up = parent};
	with_setup(&L, s->withClause, parent);
	w_with(m, &L, s->withClause);
	const SelectStmt *left = s;
	while (left->op != SETOP_NONE && left->larg)
		left = left->larg;
	if (left->intoClause && !parent)
		w_into(m, (const Node *)s, left->intoClause);
}

/* Relation rv has a masked column (1), has none (0), or is not known (-1). */
static int rel_state(mctx *m, const RangeVar *rv)
{
	if (!rv || !rv->relname || !m->cat || !m->cat->rel_masked)
		return -1;
	return m->cat->rel_masked(m->cat->ud, rv->schemaname, rv->relname);
}

/* A rename or move of relation rv: refused when it has masked columns (the rules would stop matching them). */
static void w_rename_rel(mctx *m, const RangeVar *rv, const char *what)
{
	int r = rel_state(m, rv);
	if (r > 0)
		mrefuse(m, "%s %s would take its masked columns out of the masking rules' reach (rules name a column by its "
			"schema, table and column names)", what, rv_name(rv));
	else if (r < 0)
		mfail(m, "%s %s: the relation is not in the gateway's catalog snapshot, so whether it has masked columns is "
			"not known", what, rv ? rv_name(rv) : "?");
}

static bool explain_analyze(const ExplainStmt *e)
{
	const ListCell *lc;
	foreach(lc, e->options) {
		const DefElem *d = lfirst(lc);
		if (IsA(d, DefElem) && !strcmp(d->defname, "analyze") && !option_false(d->arg))
			return true;
	}
	return false;
}

static void w_stmt(mctx *m, mlevel *parent, const Node *n)
{
	if (!n || !enter(m))
		return;
	switch (nodeTag(n)) {
	case T_SelectStmt:
		w_select(m, parent, (const SelectStmt *)n);
		break;
	case T_InsertStmt:
		w_insert(m, parent, (const InsertStmt *)n);
		break;
	case T_UpdateStmt:
		w_update(m, parent, (const UpdateStmt *)n);
		break;
	case T_DeleteStmt: {
		/* deleting copies nothing; its data-modifying CTEs may */
		const DeleteStmt *d = (const DeleteStmt *)n;
		mlevel L = {.up = parent};
		with_setup(&L, d->withClause, parent);
		w_with(m, &L, d->withClause);
		break;
	}
	case T_MergeStmt:
		w_merge(m, parent, (const MergeStmt *)n);
		break;
	case T_CreateTableAsStmt: {
		const CreateTableAsStmt *c = (const CreateTableAsStmt *)n;
		if (c->query && IsA(c->query, ExecuteStmt)) {
			mfail(m, "CREATE TABLE AS EXECUTE: the prepared statement is not known here");
			break;
		}
		if (c->into && c->into->skipData && c->objtype == OBJECT_TABLE)
			break; /* WITH NO DATA: an empty table (a materialized view is filled by REFRESH later) */
		if (c->query && IsA(c->query, SelectStmt))
			w_stmt(m, NULL, c->query); /* its own data-modifying CTEs, if any */
		if (c->into && c->query)
			w_into(m, c->query, c->into);
		break;
	}
	case T_CopyStmt: {
		const CopyStmt *c = (const CopyStmt *)n;
		if (c->is_from)
			break;
		if (c->query)
			w_stmt(m, NULL, c->query); /* COPY (INSERT ... RETURNING ...) TO */
		if (!c->filename)
			break; /* TO STDOUT: masked on its way to the client */
		mcols cols = {0};
		if (c->query) {
			if (query_cols(m, NULL, c->query, &cols) <= 0)
				break;
		} else if (c->relation) {
			copy_table_cols(m, c, &cols);
		}
		for (int i = 0; i < cols.n && !m->failed; i++)
			flow(m, cols.c[i].v, GW_SQL_INTO_FILE, NULL, c->is_program ? "a program's input" : c->filename,
				cols.c[i].name);
		break;
	}
	case T_ExplainStmt:
		if (explain_analyze((const ExplainStmt *)n))
			w_stmt(m, parent, ((const ExplainStmt *)n)->query); /* EXPLAIN ANALYZE runs it */
		break;
	case T_PrepareStmt:
		w_stmt(m, parent, ((const PrepareStmt *)n)->query);
		break;
	case T_RuleStmt: {
		/* CREATE RULE: its actions run on every event, with NEW and OLD the rule's relation's rows */
		const RuleStmt *r = (const RuleStmt *)n;
		mlevel L = {.up = parent};
		mitem *nw = rangevar_item(m, &L, r->relation, false), *old = rangevar_item(m, &L, r->relation, false);
		nw->refname = "new";
		old->refname = "old";
		nw->plain_rel = old->plain_rel = false;
		ns_add(&L, nw);
		ns_add(&L, old);
		for (int i = 0; i < L.nns; i++)
			L.ns[i]->lateral_only = false;
		const ListCell *lc;
		foreach(lc, r->actions)
			w_stmt(m, &L, lfirst(lc));
		break;
	}
	case T_CreateTrigStmt: {
		const CreateTrigStmt *t = (const CreateTrigStmt *)n;
		int r = rel_state(m, t->relation);
		if (r > 0)
			mrefuse(m, "a trigger on %s would hand its rows, masked columns included, to a function the gateway "
				"cannot see into", rv_name(t->relation));
		else if (r < 0)
			mfail(m, "a trigger on %s: the relation is not in the gateway's catalog snapshot",
				t->relation ? rv_name(t->relation) : "?");
		break;
	}
	case T_DoStmt:
		mfail(m, "a DO block runs code the gateway cannot read; it may copy masked values anywhere");
		break;
	case T_CallStmt:
		mfail(m, "CALL runs a procedure defined in the database, which may copy masked values anywhere");
		break;
	case T_ExecuteStmt:
		/* only reached for a prepared write: its text was decided at PREPARE, on a catalog that may have changed */
		mfail(m, "EXECUTE of a prepared statement that writes is not decided again here; send the statement itself, "
			"or prepare it over the extended protocol");
		break;
	case T_RenameStmt: {
		const RenameStmt *r = (const RenameStmt *)n;
		switch (r->renameType) {
		case OBJECT_TABLE: case OBJECT_VIEW: case OBJECT_MATVIEW: case OBJECT_FOREIGN_TABLE:
			w_rename_rel(m, r->relation, "renaming");
			break;
		case OBJECT_INDEX: case OBJECT_SEQUENCE:
			/* ALTER INDEX/SEQUENCE ... RENAME take a table's name too; an index or sequence is not in the snapshot */
			if (rel_state(m, r->relation) > 0)
				w_rename_rel(m, r->relation, "renaming");
			break;
		case OBJECT_COLUMN: case OBJECT_ATTRIBUTE: { /* ALTER TYPE t RENAME ATTRIBUTE renames a table's column too */
			int st = rel_state(m, r->relation);
			if (st < 0) {
				w_rename_rel(m, r->relation, "renaming a column of");
			} else if (st > 0 && r->subname && (!m->cat->masked ||
					m->cat->masked(m->cat->ud, r->relation->schemaname, r->relation->relname, r->subname))) {
				mrefuse(m, "renaming the masked column %s of %s would take it out of the masking rules' reach (rules "
					"name a column by its schema, table and column names)", r->subname, rv_name(r->relation));
			}
			break;
		}
		case OBJECT_SCHEMA:
			if (r->subname && (!m->cat || !m->cat->schema_masked || m->cat->schema_masked(m->cat->ud, r->subname)))
				mrefuse(m, "renaming schema %s would take its masked columns out of the masking rules' reach (rules "
					"name a column by its schema, table and column names)", r->subname);
			break;
		default:
			break;
		}
		break;
	}
	case T_AlterObjectSchemaStmt: {
		const AlterObjectSchemaStmt *a = (const AlterObjectSchemaStmt *)n;
		if (a->objectType == OBJECT_TABLE || a->objectType == OBJECT_VIEW || a->objectType == OBJECT_MATVIEW ||
			a->objectType == OBJECT_FOREIGN_TABLE)
			w_rename_rel(m, a->relation, "moving");
		break;
	}
	case T_AlterTableStmt: {
		/* a partition or child takes its parent's rules: detaching it would leave them behind */
		const AlterTableStmt *a = (const AlterTableStmt *)n;
		const ListCell *lc;
		foreach(lc, a->cmds) {
			const AlterTableCmd *c = lfirst(lc);
			const RangeVar *other = NULL;
			if (!IsA(c, AlterTableCmd))
				continue;
			if (c->subtype == AT_AlterColumnType || c->subtype == AT_DropExpression) {
				/*
				 * USING computes a column's new values from the row (masked columns included), and a
				 * generated column that drops its expression keeps values computed from them as its own.
				 */
				int st = rel_state(m, a->relation);
				if (st > 0)
					mrefuse(m, "%s on %s, a table with masked columns, would compute stored values from them",
						c->subtype == AT_DropExpression ? "DROP EXPRESSION" : "ALTER COLUMN ... TYPE",
						rv_name(a->relation));
				else if (st < 0)
					mfail(m, "ALTER TABLE %s: the relation is not in the gateway's catalog snapshot",
						rv_name(a->relation));
				continue;
			}
			if ((c->subtype == AT_DetachPartition || c->subtype == AT_DetachPartitionFinalize) && c->def &&
				IsA(c->def, PartitionCmd))
				other = ((const PartitionCmd *)c->def)->name;
			else if (c->subtype == AT_DropInherit && c->def && IsA(c->def, RangeVar))
				other = (const RangeVar *)c->def;
			else
				continue;
			w_rename_rel(m, a->relation, "detaching");
			if (other)
				w_rename_rel(m, other, "detaching");
		}
		break;
	}
	default:
		break; /* writes no values (DDL that moves no data, reads, SET, ...) */
	}
	leave(m);
}

int gw_sql_mask_writes(const char *text, size_t len, const gw_sql_catalog *cat, char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = 0;
	char *sql = gw_xmalloc(len + 1);
	memcpy(sql, text, len);
	sql[len] = 0;
	mctx m = {.cat = cat};
	MemoryContext ctx = pg_query_enter_memory_context();
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse(sql);
	int rc = 0;
	if (r.error) {
		pg_query_free_error(r.error); /* the server does not run it either */
	} else {
		const ListCell *lc;
		foreach(lc, r.tree) {
			if (m.failed)
				break;
			w_stmt(&m, NULL, lfirst_node(RawStmt, lc)->stmt);
		}
		rc = m.refused ? 1 : m.failed ? -1 : 0;
	}
	if (why && whylen)
		snprintf(why, whylen, "%s", rc ? m.why : "");
	free(r.stderr_buffer);
	pg_query_exit_memory_context(ctx);
	free(sql);
	return rc;
}

/* ---- COPY ... TO STDOUT options ---- */

void gw_sql_copy_free(struct gw_sql_copy *c)
{
	if (!c)
		return;
	free(c->null_str);
	free(c->encoding);
	free(c->schema);
	free(c->rel);
	for (size_t i = 0; i < c->ncols; i++)
		free(c->cols[i]);
	free(c->cols);
	memset(c, 0, sizeof(*c));
}

/* An option's value as defGetString reads it; false when it has none of those forms. */
static bool copy_opt_string(const Node *arg, char *buf, size_t cap, const char **out)
{
	if (!arg)
		return false;
	if (IsA(arg, String)) {
		*out = strVal(arg);
		return true;
	}
	if (IsA(arg, Integer)) {
		snprintf(buf, cap, "%d", intVal(arg));
		*out = buf;
		return true;
	}
	if (IsA(arg, Float)) {
		*out = castNode(Float, (Node *)arg)->fval;
		return *out != NULL;
	}
	if (IsA(arg, Boolean)) {
		*out = boolVal(arg) ? "true" : "false";
		return true;
	}
	return false;
}

/* defGetCopyHeaderChoice for COPY TO: 1 true, 0 false, -1 refused (MATCH is for COPY FROM). */
static int copy_opt_header(const Node *arg)
{
	if (!arg)
		return 1;
	if (IsA(arg, Integer))
		return intVal(arg) == 0 ? 0 : intVal(arg) == 1 ? 1 : -1;
	char buf[32];
	const char *v;
	if (!copy_opt_string(arg, buf, sizeof(buf), &v))
		return -1;
	if (!strcasecmp(v, "true") || !strcasecmp(v, "on"))
		return 1;
	if (!strcasecmp(v, "false") || !strcasecmp(v, "off"))
		return 0;
	return -1;
}

static int copy_fail(char *why, size_t whylen, const char *msg)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", msg);
	return -1;
}

static int copy_options(const CopyStmt *c, struct gw_sql_copy *out, char *why, size_t whylen)
{
	if (c->is_from || c->filename || c->is_program)
		return copy_fail(why, whylen, "not COPY ... TO STDOUT");
	if (c->whereClause)
		return copy_fail(why, whylen, "COPY TO takes no WHERE clause");
	const char *format = NULL, *delim = NULL, *null = NULL, *quote = NULL, *escape = NULL, *enc = NULL;
	int header = -2;
	bool force_quote = false;
	char nbuf[6][32];
	const ListCell *lc;
	foreach(lc, c->options) {
		const DefElem *d = lfirst(lc);
		const char *name = d->defname ? d->defname : "";
		const char **slot = !strcmp(name, "format") ? &format : !strcmp(name, "delimiter") ? &delim :
			!strcmp(name, "null") ? &null : !strcmp(name, "quote") ? &quote : !strcmp(name, "escape") ? &escape :
			!strcmp(name, "encoding") ? &enc : NULL;
		if (slot) {
			if (*slot)
				return copy_fail(why, whylen, "an option given twice");
			int k = slot == &format ? 0 : slot == &delim ? 1 : slot == &null ? 2 : slot == &quote ? 3 :
				slot == &escape ? 4 : 5;
			if (!copy_opt_string(d->arg, nbuf[k], sizeof(nbuf[k]), slot))
				return copy_fail(why, whylen, "an option value of an unexpected form");
		} else if (!strcmp(name, "header")) {
			if (header != -2)
				return copy_fail(why, whylen, "an option given twice");
			header = copy_opt_header(d->arg);
			if (header < 0)
				return copy_fail(why, whylen, "HEADER value not accepted by COPY TO");
		} else if (!strcmp(name, "force_quote")) {
			if (force_quote)
				return copy_fail(why, whylen, "an option given twice");
			force_quote = true;
		} else if (!strcmp(name, "freeze") || !strcmp(name, "convert_selectively")) {
			/* no effect on what COPY TO writes */
		} else {
			return copy_fail(why, whylen, "an option COPY TO does not take");
		}
	}
	if (!format || !strcmp(format, "text"))
		out->format = GW_SQL_COPY_TEXT;
	else if (!strcmp(format, "csv"))
		out->format = GW_SQL_COPY_CSV;
	else if (!strcmp(format, "binary"))
		out->format = GW_SQL_COPY_BINARY;
	else
		return copy_fail(why, whylen, "COPY format not recognized");
	bool csv = out->format == GW_SQL_COPY_CSV, bin = out->format == GW_SQL_COPY_BINARY;
	if (bin && (delim || null || header > 0))
		return copy_fail(why, whylen, "an option BINARY does not take");
	if (!csv && (quote || escape || force_quote))
		return copy_fail(why, whylen, "an option only CSV takes");
	if (!delim)
		delim = csv ? "," : "\t";
	if (!null)
		null = csv ? "" : "\\N";
	if (!quote)
		quote = "\"";
	if (!escape)
		escape = quote;
	if (strlen(delim) != 1 || delim[0] == '\r' || delim[0] == '\n' || strchr(null, '\r') || strchr(null, '\n'))
		return copy_fail(why, whylen, "DELIMITER or NULL not accepted");
	if (!csv && strchr("\\.abcdefghijklmnopqrstuvwxyz0123456789", delim[0]))
		return copy_fail(why, whylen, "DELIMITER not accepted in text format");
	if (strchr(null, delim[0]))
		return copy_fail(why, whylen, "the NULL string holds the delimiter");
	if (csv && (strlen(quote) != 1 || strlen(escape) != 1 || quote[0] == delim[0] || strchr(null, quote[0])))
		return copy_fail(why, whylen, "QUOTE or ESCAPE not accepted");
	if (enc && !gw_sql_encoding_safe(enc))
		return copy_fail(why, whylen, "an ENCODING whose characters may hold ASCII bytes");
	out->delim = delim[0];
	out->quote = csv ? quote[0] : 0;
	out->escape = csv ? escape[0] : 0;
	out->header = header > 0;
	out->null_len = strlen(null);
	out->null_str = gw_xstrdup(null);
	out->encoding = enc ? gw_xstrdup(enc) : NULL;
	if (c->query) {
		out->query = true;
		return 0;
	}
	if (!c->relation || !c->relation->relname)
		return copy_fail(why, whylen, "COPY without a table or query");
	out->schema = c->relation->schemaname ? gw_xstrdup(c->relation->schemaname) : NULL;
	out->rel = gw_xstrdup(c->relation->relname);
	int n = list_length(c->attlist);
	if (n > 0) {
		out->cols = gw_xcalloc((size_t)n, sizeof(char *));
		foreach(lc, c->attlist) {
			const Node *s = lfirst(lc);
			if (!IsA(s, String))
				return copy_fail(why, whylen, "a column list entry that is not a name");
			out->cols[out->ncols++] = gw_xstrdup(strVal(s));
		}
	}
	return 0;
}

int gw_sql_copy_options(const char *text, size_t len, struct gw_sql_copy *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (why && whylen)
		why[0] = 0;
	char *sql = gw_xmalloc(len + 1);
	memcpy(sql, text, len);
	sql[len] = 0;
	int rc = -1;
	MemoryContext ctx = pg_query_enter_memory_context();
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse(sql);
	if (r.error) {
		copy_fail(why, whylen, "does not parse");
		pg_query_free_error(r.error);
	} else if (list_length(r.tree) != 1) {
		copy_fail(why, whylen, "not one statement");
	} else {
		const Node *n = linitial_node(RawStmt, r.tree)->stmt;
		if (n && IsA(n, CopyStmt))
			rc = copy_options((const CopyStmt *)n, out, why, whylen);
		else
			copy_fail(why, whylen, "not a COPY statement");
	}
	free(r.stderr_buffer);
	pg_query_exit_memory_context(ctx);
	free(sql);
	if (rc < 0)
		gw_sql_copy_free(out);
	return rc;
}
