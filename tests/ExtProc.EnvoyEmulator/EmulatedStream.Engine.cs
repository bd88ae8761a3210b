using Google.Protobuf.WellKnownTypes;

namespace ExtProc.EnvoyEmulator;

public sealed partial class EmulatedStream
{
    private readonly Dictionary<string, Struct> _metadata = [];
    private readonly EnvoyEmulator _emulator;
    private readonly DownstreamRequest _request;
    private readonly CancellationToken _cancellationToken;

    internal EmulatedStream(EnvoyEmulator emulator, DownstreamRequest request, CancellationToken cancellationToken)
    {
        _emulator = emulator;
        _request = request;
        _cancellationToken = cancellationToken;
    }

    internal void Run() => throw new NotImplementedException();

    private void Post(object evt) => throw new NotImplementedException(evt.ToString());

    private sealed record ClientAbortEvent;
}
