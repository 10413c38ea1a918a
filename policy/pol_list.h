/*
 * pol_list — the policy modules (polmod.h), one line each. Adding a policy is
 * its file policy/pol_NAME.c, one line here and its row in docs/policies.md.
 * Included several times with POL_MODULE defined differently: no guard.
 */
POL_MODULE(authentication_basic)
POL_MODULE(check_header)
POL_MODULE(cors)
POL_MODULE(forward_request)
POL_MODULE(ip_filter)
POL_MODULE(limit_concurrency)
POL_MODULE(mock_response)
POL_MODULE(quota)
POL_MODULE(quota_by_key)
POL_MODULE(rate_limit)
POL_MODULE(rate_limit_by_key)
POL_MODULE(retry)
POL_MODULE(return_response)
POL_MODULE(set_backend_service)
POL_MODULE(rewrite_uri)
POL_MODULE(set_header)
POL_MODULE(set_method)
POL_MODULE(set_query_parameter)
POL_MODULE(set_status)
POL_MODULE(validate_jwt)
