namespace ExtProc.Observability;

/// <summary>
/// Log events of configuration and identity. Keys, tokens and credential headers are never logged:
/// only a key's public id, a tenant id, an error code and a short reason.
/// </summary>
internal static partial class TenancyLog
{
    [LoggerMessage(EventId = EventIds.ConfigLoaded, EventName = "ConfigLoaded", Level = LogLevel.Information,
        Message = "Configuration {Version} from {Source} applied: {Tenants} tenant(s), {Keys} key(s), {Issuers} JWT issuer(s).")]
    public static partial void ConfigLoaded(ILogger logger, string version, string source, int tenants, int keys, int issuers);

    [LoggerMessage(EventId = EventIds.ConfigRejected, EventName = "ConfigRejected", Level = LogLevel.Critical,
        Message = "Configuration from {Source} is invalid; ExtProc does not start. {Errors}")]
    public static partial void ConfigRejected(ILogger logger, string source, string errors);

    [LoggerMessage(EventId = EventIds.ConfigReloadFailed, EventName = "ConfigReloadFailed", Level = LogLevel.Error,
        Message = "Configuration change in {Source} refused; still serving {Version}. {Errors}")]
    public static partial void ConfigReloadFailed(ILogger logger, string source, string version, string errors);

    [LoggerMessage(EventId = EventIds.JwksRefreshed, EventName = "JwksRefreshed", Level = LogLevel.Information,
        Message = "JWKS {Source} loaded: {Count} signing key(s).")]
    public static partial void JwksRefreshed(ILogger logger, string source, int count);

    [LoggerMessage(EventId = EventIds.JwksRefreshFailed, EventName = "JwksRefreshFailed", Level = LogLevel.Warning,
        Message = "JWKS {Source} could not be refreshed ({Reason}); the last good keys stay in use.")]
    public static partial void JwksRefreshFailed(ILogger logger, string source, string reason);

    [LoggerMessage(EventId = EventIds.AuthDenied, EventName = "AuthDenied", Level = LogLevel.Debug,
        Message = "Request {RequestId} refused: {Code} ({Reason}); key id {KeyId}.")]
    public static partial void AuthDenied(ILogger logger, string requestId, string code, string reason, string? keyId);

    [LoggerMessage(EventId = EventIds.AuthAccepted, EventName = "AuthAccepted", Level = LogLevel.Trace,
        Message = "Request {RequestId} is tenant {Tenant} by {Identity}; key id {KeyId}.")]
    public static partial void AuthAccepted(ILogger logger, string requestId, string tenant, string identity, string? keyId);

    [LoggerMessage(EventId = EventIds.InvalidIdentityValue, EventName = "InvalidIdentityValue", Level = LogLevel.Warning,
        Message = "An identity value from {Source} carries control characters and was refused: {EscapedValue}")]
    public static partial void InvalidIdentityValue(ILogger logger, string source, string escapedValue);

    [LoggerMessage(EventId = EventIds.PolicyDenied, EventName = "PolicyDenied", Level = LogLevel.Debug,
        Message = "Request {RequestId} of tenant {Tenant} refused by policy: {Code}.")]
    public static partial void PolicyDenied(ILogger logger, string requestId, string tenant, string code);
}
