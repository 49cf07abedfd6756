import Foundation
import LoaDaemon

exit(LoaCLI.main(CommandLine.arguments))
