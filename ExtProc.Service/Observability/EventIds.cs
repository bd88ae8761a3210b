namespace ExtProc.Observability;

/// <summary>Every log event id in one place. Ids and names are a public contract: never reuse or rename.</summary>
internal static class EventIds
{
    public const int StreamFailed = 1001;
    public const int PhaseFailed = 1002;
    public const int ProtocolViolation = 1003;
    public const int BodyModeMismatch = 1004;
    public const int StreamDrained = 1005;
    public const int StreamReset = 1006;

    public const int DrainStarted = 2001;
    public const int DrainDeadline = 2002;
    public const int Listening = 2003;

    public const int ConfigLoaded = 3001;
    public const int ConfigRejected = 3002;
    public const int ConfigReloadFailed = 3003;
    public const int JwksRefreshed = 3004;
    public const int JwksRefreshFailed = 3005;

    public const int AuthDenied = 3101;
    public const int AuthAccepted = 3102;
    public const int InvalidIdentityValue = 3103;
    public const int PolicyDenied = 3104;

    public const int McpDenied = 3201;
    public const int McpForeignSession = 3202;
    public const int McpToolChanged = 3203;
    public const int McpListUnreadable = 3204;
    public const int LlmToolCallFlagged = 3205;

    public const int CacheEntryRejected = 3301;
    public const int CacheStoreFailed = 3302;
}
