/*
 * pol_list — the policy modules (polmod.h), one line each. Adding a policy is
 * its file policy/pol_NAME.c, one line here and its row in docs/policies.md.
 * Included several times with POL_MOD defined differently: no guard.
 */
POL_MOD(authentication_basic)
POL_MOD(check_header)
POL_MOD(choose)
POL_MOD(cors)
POL_MOD(forward_request)
POL_MOD(ip_filter)
POL_MOD(limit_concurrency)
POL_MOD(mock_response)
POL_MOD(quota)
POL_MOD(quota_by_key)
POL_MOD(rate_limit)
POL_MOD(rate_limit_by_key)
POL_MOD(retry)
POL_MOD(return_response)
POL_MOD(set_backend_service)
POL_MOD(set_body)
POL_MOD(rewrite_uri)
POL_MOD(set_header)
POL_MOD(set_method)
POL_MOD(set_query_parameter)
POL_MOD(set_status)
POL_MOD(set_variable)
POL_MOD(trace)
POL_MOD(validate_jwt)
