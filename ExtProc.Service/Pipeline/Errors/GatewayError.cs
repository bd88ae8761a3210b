namespace ExtProc.Pipeline.Errors;

/// <summary>
/// Every error ExtProc answers with: HTTP status and a stable machine code. Codes are part of our
/// public contract (clients and dashboards match on them); never rename one.
/// </summary>
internal sealed record GatewayError(int Status, string Code)
{
    public static readonly GatewayError InvalidRequest = new(400, "invalid_request");
    public static readonly GatewayError InvalidHeader = new(400, "invalid_header");
    public static readonly GatewayError BodyTooLarge = new(413, "body_too_large");
    public static readonly GatewayError UnsupportedMediaType = new(415, "unsupported_media_type");
    public static readonly GatewayError UnsupportedEncoding = new(415, "unsupported_encoding");
    public static readonly GatewayError Internal = new(500, "gateway_internal_error");
    public static readonly GatewayError UpstreamBodyTooLarge = new(502, "upstream_body_too_large");

    // Identity and tenancy (faults.md §8.2).
    public static readonly GatewayError MissingCredentials = new(401, "missing_credentials");
    public static readonly GatewayError InvalidApiKey = new(401, "invalid_api_key");
    public static readonly GatewayError InvalidToken = new(401, "invalid_token");
    public static readonly GatewayError UnsupportedAuthScheme = new(401, "unsupported_auth_scheme");
    public static readonly GatewayError InvalidClientIdentity = new(401, "invalid_client_identity");
    public static readonly GatewayError AmbiguousCredentials = new(400, "ambiguous_credentials");
    public static readonly GatewayError CredentialsInQuery = new(400, "credentials_in_query");
    public static readonly GatewayError InvalidIdentityValue = new(400, "invalid_identity_value");
    public static readonly GatewayError UnknownTenant = new(403, "unknown_tenant");
    public static readonly GatewayError ModelNotAllowed = new(403, "model_not_allowed");
    public static readonly GatewayError AuthUnavailable = new(503, "auth_unavailable");

    // Routing (issue 4; faults.md P13).
    public static readonly GatewayError ModelNotFound = new(404, "model_not_found");
    public static readonly GatewayError NoPermittedTarget = new(403, "no_permitted_target");
    public static readonly GatewayError NoCapableTarget = new(400, "no_capable_target");
    public static readonly GatewayError UnsupportedField = new(400, "unsupported_field");
    public static readonly GatewayError ProviderNotConfigured = new(503, "provider_not_configured");
    public static readonly GatewayError TargetSkipped = new(503, "target_skipped");
    public static readonly GatewayError TargetsCoolingDown = new(503, "targets_cooling_down");

    // Limits and budgets (faults.md §8.4).
    public static readonly GatewayError RateLimited = new(429, "rate_limited");
    public static readonly GatewayError BudgetExhausted = new(429, "budget_exhausted");
    public static readonly GatewayError LimitsUnavailable = new(503, "limits_unavailable");
    public static readonly GatewayError ModelNotPriced = new(403, "model_not_priced");

}
