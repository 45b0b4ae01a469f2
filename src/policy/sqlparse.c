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
	case T_A_Expr:
		visit(w, ((const A_Expr *)n)->lexpr);
		visit(w, ((const A_Expr *)n)->rexpr);
		break;
	case T_BoolExpr:
		visit_list(w, ((const BoolExpr *)n)->args);
		break;
	case T_TypeCast:
		visit(w, ((const TypeCast *)n)->arg);
		break;
	case T_CollateClause:
		visit(w, ((const CollateClause *)n)->arg);
		break;
	case T_SubLink:
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
