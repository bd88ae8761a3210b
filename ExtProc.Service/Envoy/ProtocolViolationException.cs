using Grpc.Core;

namespace ExtProc.Envoy;

/// <summary>
/// The peer broke the ext_proc message order or sent a message we cannot interpret. Real Envoy never
/// does; the stream ends with a non-OK status so Envoy fails the request closed.
/// </summary>
internal sealed class ProtocolViolationException : Exception
{
    public ProtocolViolationException(StatusCode status, string message)
        : base(message) => Status = status;

    public StatusCode Status { get; }
}

/// <summary>Envoy reset the stream while we were answering: nobody is left to read the reply.</summary>
internal sealed class PeerGoneException : Exception
{
    public PeerGoneException(Exception inner)
        : base("The ext_proc peer went away.", inner)
    {
    }
}
