/* Every unit test, by module. X(name) declares and registers test_name. */
#define GW_UNIT_TESTS \
	X(buf_grow_consume) \
	X(buf_msg_builder) \
	X(util_duration) \
	X(util_hostport) \
	X(util_base64) \
	X(pgwire_frame) \
	X(pgwire_startup_ok) \
	X(pgwire_startup_malformed) \
	X(pgwire_error_fields) \
	X(scram_rfc7677_vector) \
	X(config_minimal_ok) \
	X(config_errors_have_lines) \
	X(config_secret_inline_refused) \
	X(identity_token_roundtrip) \
	X(identity_admin_groups) \
	X(sql_classes_and_flags) \
	X(sql_relations_functions_and_errors)
