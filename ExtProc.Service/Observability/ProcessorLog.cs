namespace ExtProc.Observability;

/// <summary>Log events of the ext_proc engine. Never log bodies, header values, keys or tokens.</summary>
internal static partial class ProcessorLog
{
    [LoggerMessage(EventId = EventIds.PhaseFailed, EventName = "PhaseFailed", Level = LogLevel.Error,
        Message = "Processing failed in phase {Phase}; answering 500 gateway_internal_error where possible.")]
    public static partial void PhaseFailed(ILogger logger, string phase, Exception exception);

    [LoggerMessage(EventId = EventIds.StreamFailed, EventName = "StreamFailed", Level = LogLevel.Error,
        Message = "The ext_proc stream failed and ends with status {Status}.")]
    public static partial void StreamFailed(ILogger logger, string status, Exception exception);

    [LoggerMessage(EventId = EventIds.ProtocolViolation, EventName = "ProtocolViolation", Level = LogLevel.Warning,
        Message = "The ext_proc peer broke the protocol ({Detail}); the stream ends with status {Status}.")]
    public static partial void ProtocolViolation(ILogger logger, string detail, string status);

    [LoggerMessage(EventId = EventIds.BodyModeMismatch, EventName = "BodyModeMismatch", Level = LogLevel.Error,
        Message = "A stage needs the {Direction} body but Envoy's body mode is NONE and mode_override is not possible; set the body mode in the ext_proc filter.")]
    public static partial void BodyModeMismatch(ILogger logger, string direction);

    [LoggerMessage(EventId = EventIds.StreamReset, EventName = "StreamReset", Level = LogLevel.Debug,
        Message = "Envoy reset the ext_proc stream (its normal close).")]
    public static partial void StreamReset(ILogger logger);

    [LoggerMessage(EventId = EventIds.StreamDrained, EventName = "StreamDrained", Level = LogLevel.Information,
        Message = "An in-flight stream outlived the drain timeout and ends UNAVAILABLE.")]
    public static partial void StreamDrained(ILogger logger);
}

internal static partial class LifecycleLog
{
    [LoggerMessage(EventId = EventIds.DrainStarted, EventName = "DrainStarted", Level = LogLevel.Information,
        Message = "Shutdown requested: not ready; draining for {Delay} then waiting up to {Timeout} for in-flight streams.")]
    public static partial void DrainStarted(ILogger logger, TimeSpan delay, TimeSpan timeout);

    [LoggerMessage(EventId = EventIds.DrainDeadline, EventName = "DrainDeadline", Level = LogLevel.Warning,
        Message = "Drain timeout reached with {Count} stream(s) still open; ending them UNAVAILABLE.")]
    public static partial void DrainDeadline(ILogger logger, int count);
}
