namespace ExtProc.Observability;

/// <summary>Log events of the response cache. Never a body, a key or a key hash: the request id and tenant only.</summary>
internal static partial class CacheLog
{
    [LoggerMessage(EventId = EventIds.CacheEntryRejected, EventName = "CacheEntryRejected", Level = LogLevel.Warning,
        Message = "Request {RequestId} of tenant {Tenant}: a cache entry failed its check ({Reason}); it was not served and was deleted.")]
    public static partial void EntryRejected(ILogger logger, string requestId, string tenant, string reason);

    [LoggerMessage(EventId = EventIds.CacheStoreFailed, EventName = "CacheStoreFailed", Level = LogLevel.Debug,
        Message = "Cache level 2 {Operation} failed or overran its budget; the request bypassed it.")]
    public static partial void StoreFailed(ILogger logger, string operation, Exception exception);
}
