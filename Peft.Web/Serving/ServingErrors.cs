namespace Peft.Web.Serving;

/// <summary>
/// The generation outlived <see cref="ServingOptions.RequestTimeoutSeconds"/>. Answered 504 by the exception handler:
/// the server gave up waiting on its own backend (the engine), which is what 504 means; 408 is for a client that is
/// too slow to send its request, which is not the case here.
/// </summary>
public sealed class GenerationTimeoutException(int seconds) : Exception($"generation did not finish within the server's timeout of {seconds} s");
