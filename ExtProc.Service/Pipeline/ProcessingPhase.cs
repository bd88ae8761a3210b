namespace ExtProc.Pipeline;

internal enum ProcessingPhase
{
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}
